// libFuzzer entry point for the stage's HTTP/2 guard (src/net/h2_guard.h): the bytes after
// the client preface as a client's frames. Two invariants trap when broken:
//   - the verdict does not depend on how the bytes arrive (whole, or cut where the input
//     says), since TCP may deliver them in any pieces;
//   - it equals a whole-buffer reference written apart here: refused exactly when a header
//     block passes the limit or the resets pass the burst (the clock stands still).
// Build with -DGGSWARM_FUZZ=ON and clang; tests/h2_guard_test.cpp replays it in every build.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/h2_guard.h"

namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// True when the frames in `b` stay within `l` (time standing still).
bool ReferenceAllows(const std::string& b, const ggswarm::net::Http2Limits& l) {
  size_t at = 0;
  uint64_t block = 0;
  bool in_block = false;
  double resets = 0;
  while (at + 9 <= b.size()) {
    const auto* h = reinterpret_cast<const uint8_t*>(b.data() + at);
    const uint64_t len = (uint64_t{h[0]} << 16) | (uint64_t{h[1]} << 8) | h[2];
    const uint8_t type = h[3], flags = h[4];
    if (type == 1) {
      in_block = true;
      block = 0;
    }
    if (type == 1 || (type == 9 && in_block)) {
      block += len;
      if (block > l.max_header_block) return false;
      if (flags & 4) in_block = false;
    }
    if (type == 3 && ++resets > l.reset_burst) return false;
    at += 9 + len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ggswarm::net::Http2Limits l;
  l.max_header_block = 4096;  // small, so that short inputs reach it
  l.reset_burst = 5;
  const std::string frames(reinterpret_cast<const char*>(data), size);
  const std::string all = std::string(kPreface) + frames;
  const auto* bytes = reinterpret_cast<const uint8_t*>(all.data());

  ggswarm::net::Http2FrameWatch whole(l, 0);
  const bool whole_ok = whole.Feed(bytes, all.size(), 0);
  ggswarm::net::Http2FrameWatch pieces(l, 0);
  bool pieces_ok = true;
  const size_t step = 1 + (size > 0 ? data[0] % 23 : 0);
  for (size_t at = 0; at < all.size() && pieces_ok; at += step)
    pieces_ok = pieces.Feed(bytes + at, std::min(step, all.size() - at), 0);
  if (whole_ok != pieces_ok) __builtin_trap();
  if (whole_ok != ReferenceAllows(frames, l)) __builtin_trap();
  if (!whole_ok && whole.why().empty()) __builtin_trap();
  // Anything else than the preface first is refused.
  ggswarm::net::Http2FrameWatch bad(l, 0);
  if (size > 0 && data[0] != 'P' && bad.Feed(data, size, 0)) __builtin_trap();
  return 0;
}
