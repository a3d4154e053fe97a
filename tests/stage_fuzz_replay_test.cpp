// Drives the stage's fuzz entry point (fuzz/stage_fuzz.cpp) with deterministic mutations of
// valid messages, and holds its checks to what they must refuse.
#include <gtest/gtest.h>

#include "mutate.h"
#include "net/stage_checks.h"
#include "stage.pb.h"

namespace {

namespace pb = ggswarm::stage::v1;
using ggswarm::testing::Mutate;

std::vector<uint8_t> Bytes(const google::protobuf::Message& m) {
  const std::string s = m.SerializeAsString();
  return {s.begin(), s.end()};
}

TEST(StageFuzzReplay, MutatedMessages) {
  pb::ForwardRequest tokens;
  tokens.set_session_id("0123456789abcdef0123456789abcdef");
  tokens.set_n(3);
  for (int t : {1, 2, 3}) tokens.add_tokens(t);
  pb::ForwardRequest hidden;
  hidden.set_n(2);
  hidden.set_position(1);
  hidden.set_hidden(std::string(2 * 64 * 4, '\x3f'));
  pb::ForwardRequest half = hidden;
  half.set_format(pb::F16);
  half.set_hidden(std::string(2 * 64 * 2, '\x3c'));
  pb::OpenSessionRequest open;
  open.set_n_ctx(128);
  pb::AnnounceRequest ann;
  auto* r = ann.add_ranges();
  r->set_address("127.0.0.1:7000");
  r->set_first_layer(1);
  r->set_end_layer(3);
  r->set_n_layer(4);
  pb::ForwardRequest routed = tokens;  // pushed on to two more stages
  for (const char* a : {"127.0.0.1:7001", "127.0.0.1:7002"}) {
    pb::Hop* h = routed.add_route();
    h->set_address(a);
    h->add_session_ids("fedcba9876543210fedcba9876543210");
  }
  pb::ForwardManyRequest many;
  *many.add_items() = hidden;
  *many.add_items() = half;
  many.mutable_items(1)->set_session_id("another");
  uint32_t seed = 1;
  for (const google::protobuf::Message* m : std::initializer_list<const google::protobuf::Message*>{
           &tokens, &hidden, &half, &open, &ann, &many, &routed}) {
    const auto b = Bytes(*m);
    ASSERT_EQ(LLVMFuzzerTestOneInput(b.data(), b.size()), 0);
    Mutate(b, 2000, seed++);
  }
}

TEST(StageChecks, RefuseWhatDoesNotFit) {
  pb::ServedRange middle;
  middle.set_n_embd(64);
  middle.set_n_vocab(300);
  pb::ForwardRequest f;
  f.set_n(2);
  f.set_hidden(std::string(2 * 64 * 4, '\0'));
  EXPECT_TRUE(ggswarm::net::CheckForwardShape(f, middle, 512).ok());
  f.set_format(pb::F16);  // the same bytes are now twice too many values
  EXPECT_FALSE(ggswarm::net::CheckForwardShape(f, middle, 512).ok());
  f.set_format(pb::F32);
  f.set_n(0xffffffffu);  // a lying count
  EXPECT_FALSE(ggswarm::net::CheckForwardShape(f, middle, 512).ok());
  f.set_n(2);
  f.set_position(0x80000005u);  // past any session
  EXPECT_FALSE(ggswarm::net::CheckForwardPosition(f, 10, 100).ok());
  f.set_position(99);
  EXPECT_EQ(ggswarm::net::CheckForwardPosition(f, 99, 100).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Going back: to 0 always, else not before what the sliding-window layers still hold.
  f.set_position(5);
  EXPECT_EQ(ggswarm::net::CheckForwardPosition(f, 10, 100, 7).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  f.set_position(7);
  EXPECT_TRUE(ggswarm::net::CheckForwardPosition(f, 10, 100, 7).ok());
  f.set_position(0);
  EXPECT_TRUE(ggswarm::net::CheckForwardPosition(f, 10, 100, 7).ok());
  pb::ServedRange first = middle;
  first.set_has_embedding(true);
  pb::ForwardRequest t;
  t.set_n(1);
  t.add_tokens(300);  // one past the vocabulary
  EXPECT_FALSE(ggswarm::net::CheckForwardShape(t, first, 512).ok());
  t.set_tokens(0, -1);
  EXPECT_FALSE(ggswarm::net::CheckForwardShape(t, first, 512).ok());
  t.set_tokens(0, 299);
  EXPECT_TRUE(ggswarm::net::CheckForwardShape(t, first, 512).ok());
  // A ForwardMany: distinct sessions, good items, at most max_batch positions and max_items.
  pb::ForwardManyRequest many;
  EXPECT_FALSE(ggswarm::net::CheckForwardMany(many, first, 512, 8).ok());  // no items
  t.set_session_id("a");
  *many.add_items() = t;
  t.set_session_id("b");
  *many.add_items() = t;
  EXPECT_TRUE(ggswarm::net::CheckForwardMany(many, first, 512, 8).ok());
  EXPECT_FALSE(ggswarm::net::CheckForwardMany(many, first, 512, 1).ok());  // too many items
  EXPECT_FALSE(ggswarm::net::CheckForwardMany(many, first, 1, 8).ok());    // too many positions
  many.mutable_items(1)->set_session_id("a");
  const grpc::Status twice = ggswarm::net::CheckForwardMany(many, first, 512, 8);
  EXPECT_NE(twice.error_message().find("comes twice"), std::string::npos) << twice.error_message();
  many.mutable_items(1)->set_session_id("b");
  many.mutable_items(1)->set_tokens(0, 300);
  const grpc::Status bad_item = ggswarm::net::CheckForwardMany(many, first, 512, 8);
  EXPECT_NE(bad_item.error_message().find("item 1: token id 300"), std::string::npos)
      << bad_item.error_message();
  pb::ServedRange bad;
  bad.set_address("x:1");
  bad.set_first_layer(3);
  bad.set_end_layer(3);
  bad.set_n_layer(4);
  EXPECT_FALSE(ggswarm::net::UsableRange(bad));
  bad.set_end_layer(5);
  EXPECT_FALSE(ggswarm::net::UsableRange(bad));
  bad.set_end_layer(4);
  EXPECT_TRUE(ggswarm::net::UsableRange(bad));
}

}  // namespace
