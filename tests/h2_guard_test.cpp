// The stage's HTTP/2 guard on its own: what its frame watch lets through and what it stops,
// counted by hand, and its fuzz entry point (fuzz/h2_guard_fuzz.cpp) driven by mutations.
#include "net/h2_guard.h"

#include <gtest/gtest.h>

#include <string>

#include "h2_attack.h"
#include "mutate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace ggswarm::net {
namespace {

const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f(9, '\0');
  f[0] = static_cast<char>(payload.size() >> 16);
  f[1] = static_cast<char>(payload.size() >> 8);
  f[2] = static_cast<char>(payload.size());
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  f[8] = static_cast<char>(stream);
  return f + payload;
}

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, size_t payload) {
  return Frame(type, flags, stream, std::string(payload, 'x'));
}

bool Feed(Http2FrameWatch& w, const std::string& s, double now = 0) {
  return w.Feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), now);
}

TEST(Http2FrameWatch, AHeaderBlockUpToTheLimitPassesOneByteMoreDoesNot) {
  Http2Limits l;
  l.max_header_block = 1000;
  Http2FrameWatch ok(l, 0);
  // HEADERS 400 + CONTINUATION 400 + CONTINUATION 200 (END_HEADERS) = 1000, then a new block.
  EXPECT_TRUE(Feed(ok, kPreface + Frame(1, 0, 1, 400) + Frame(9, 0, 1, 400) + Frame(9, 4, 1, 200) +
                           Frame(1, 4, 3, 1000)));
  Http2FrameWatch over(l, 0);
  EXPECT_FALSE(
      Feed(over, kPreface + Frame(1, 0, 1, 400) + Frame(9, 0, 1, 400) + Frame(9, 0, 1, 201)));
  EXPECT_EQ(over.why(), "a header block of more than 1000 bytes");
  // DATA frames are not headers, however large.
  Http2FrameWatch data(l, 0);
  EXPECT_TRUE(Feed(data, kPreface + Frame(1, 4, 1, 100) + Frame(0, 0, 1, 60000)));
}

TEST(Http2FrameWatch, ResetsBeyondTheBurstAreStoppedAndTheAllowanceRefills) {
  Http2Limits l;
  l.reset_burst = 3;
  l.resets_per_s = 2;
  Http2FrameWatch w(l, 0);
  const std::string rst = Frame(3, 0, 1, 4);
  ASSERT_TRUE(Feed(w, kPreface + rst + rst + rst, 0));  // the burst
  EXPECT_TRUE(Feed(w, rst, 0.5));                       // 0.5 s: one more allowed
  EXPECT_FALSE(Feed(w, rst, 0.5));
  EXPECT_EQ(w.why(), "streams reset faster than 2 per second");
  EXPECT_FALSE(Feed(w, "", 100));  // refused for good
}

TEST(Http2FrameWatch, OnlyAnHttp2ClientIsLetIn) {
  Http2Limits l;
  Http2FrameWatch w(l, 0);
  EXPECT_FALSE(Feed(w, "GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(w.why(), "not an HTTP/2 client (no connection preface)");
}

TEST(Http2FrameWatch, FuzzReplay) {
  std::string seed = Frame(4, 0, 0, 0) + Frame(1, 0, 1, testing::H2Attacker::RequestHeaders("/x")) +
                     Frame(9, 4, 1, 30) + Frame(3, 0, 1, 4) + Frame(0, 1, 1, 10);
  testing::Mutate({seed.begin(), seed.end()}, 2000, 5);
  std::string big = Frame(1, 0, 1, 600);  // a block of 7 × 600 bytes, near the target's 4096
  for (int i = 0; i < 6; ++i) big += Frame(9, i == 5 ? 4 : 0, 1, 600);
  testing::Mutate({big.begin(), big.end()}, 500, 6);
  std::string resets;  // six resets, one past the target's burst of five
  for (int i = 0; i < 6; ++i) resets += Frame(3, 0, 2 * i + 1, 4);
  testing::Mutate({resets.begin(), resets.end()}, 500, 7);
}

}  // namespace
}  // namespace ggswarm::net
