// libFuzzer entry point for what a stage reads from the network (proto/stage.proto): the
// bytes as each request message, through protobuf's parser and the stage's own checks
// (src/net/stage_checks.h), and hidden states through the wire conversions when the checks
// pass. Build with -DGGSWARM_FUZZ=ON and clang; tests/stage_fuzz_replay_test.cpp drives it
// with deterministic mutations in every ordinary build.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "net/stage_checks.h"
#include "net/stage_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace pb = ggswarm::stage::v1;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  // Two stages of a small model: the first (tokens in) and a middle one (hidden states in).
  pb::ServedRange first, middle;
  for (pb::ServedRange* s : {&first, &middle}) {
    s->set_n_embd(64);
    s->set_n_vocab(300);
    s->set_max_ctx(256);
    s->set_n_layer(4);
  }
  first.set_has_embedding(true);
  pb::ForwardRequest fwd;
  if (fwd.ParseFromString(bytes)) {
    for (const pb::ServedRange* s : {&first, &middle}) {
      if (!ggswarm::net::CheckForwardShape(fwd, *s, 512).ok()) continue;
      // A route the checks let through names one session per item at every hop.
      if (ggswarm::net::CheckRoute(fwd, 1, *s).ok()) {
        if (fwd.route_size() > 64) __builtin_trap();
        for (const auto& h : fwd.route())
          if (h.session_ids_size() != 1 || h.address().empty()) __builtin_trap();
      }
      // A position the checks let through is 0, the session's next, or one the sliding-window
      // layers still hold (from 2 on here), within the context.
      if (ggswarm::net::CheckForwardPosition(fwd, 3, s->max_ctx(), 2).ok() &&
          (fwd.position() > 3 || fwd.position() == 1 ||
           fwd.position() + static_cast<uint64_t>(fwd.n()) > s->max_ctx()))
        __builtin_trap();
      if (!s->has_embedding()) {
        std::vector<float> x(static_cast<size_t>(fwd.n()) * s->n_embd());
        ggswarm::net::FromWire(fwd.hidden(), fwd.format(), x.data(), x.size());
        (void)ggswarm::net::ToWire(x.data(), x.size(), fwd.reply_format());
      }
    }
  }
  // Every item of a ForwardMany the checks let through is a Forward they let through, and
  // the positions add up to at most max_batch.
  pb::ForwardManyRequest many;
  if (many.ParseFromString(bytes)) {
    for (const pb::ServedRange* s : {&first, &middle}) {
      if (!ggswarm::net::CheckForwardMany(many, *s, 512, 8).ok()) continue;
      uint64_t total = 0;
      for (const auto& f : many.items()) {
        if (!ggswarm::net::CheckForwardShape(f, *s, 512).ok()) __builtin_trap();
        total += f.n();
      }
      if (total > 512 || many.items_size() > 8 || many.items_size() < 1) __builtin_trap();
    }
  }
  pb::OpenSessionRequest open;
  int n_ctx = 0;
  if (open.ParseFromString(bytes)) (void)ggswarm::net::CheckOpenSession(open, 256, &n_ctx);
  pb::AnnounceRequest ann;
  if (ann.ParseFromString(bytes)) {
    for (const auto& r : ann.ranges()) (void)ggswarm::net::UsableRange(r);
  }
  pb::LookupRequest look;
  (void)look.ParseFromString(bytes);
  pb::AwaitRequest await;
  (void)await.ParseFromString(bytes);
  return 0;
}
