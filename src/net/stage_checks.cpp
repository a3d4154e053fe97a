#include "net/stage_checks.h"

#include <set>
#include <string>

#include "net/stage_wire.h"

namespace ggswarm::net {
namespace {

namespace pb = stage::v1;
constexpr uint32_t kMaxLayers = 100000;

grpc::Status Bad(const std::string& m) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, m);
}

}  // namespace

grpc::Status CheckForwardShape(const pb::ForwardRequest& req, const pb::ServedRange& self,
                               int max_batch) {
  const int64_t n = req.n();
  if (n < 1 || n > max_batch)
    return Bad("n = " + std::to_string(n) + ": a batch is 1 to " + std::to_string(max_batch) +
               " positions");
  if (self.has_embedding()) {
    if (req.tokens_size() != n || !req.hidden().empty())
      return Bad("the first stage takes n token ids (got " + std::to_string(req.tokens_size()) +
                 " for n = " + std::to_string(n) + ")");
    for (int32_t t : req.tokens()) {
      if (t < 0 || static_cast<uint32_t>(t) >= self.n_vocab())
        return Bad("token id " + std::to_string(t) + " is outside the vocabulary (" +
                   std::to_string(self.n_vocab()) + ")");
    }
    return grpc::Status::OK;
  }
  const uint64_t want = static_cast<uint64_t>(n) * self.n_embd() * HiddenBytes(req.format());
  if (req.tokens_size() != 0 || req.hidden().size() != want)
    return Bad("hidden states of " + std::to_string(req.hidden().size()) +
               " bytes: this stage takes n × " + std::to_string(self.n_embd()) + " values (" +
               std::to_string(want) + " bytes)");
  return grpc::Status::OK;
}

grpc::Status CheckForwardMany(const pb::ForwardManyRequest& req, const pb::ServedRange& self,
                              int max_batch, int max_items) {
  if (req.items_size() < 1 || req.items_size() > max_items)
    return Bad(std::to_string(req.items_size()) + " items: a ForwardMany carries 1 to " +
               std::to_string(max_items) + " (this stage's sessions)");
  int64_t total = 0;
  std::set<std::string> sessions;
  if (grpc::Status st = CheckRoute(req.items(0), req.items_size(), self); !st.ok()) return st;
  for (int i = 0; i < req.items_size(); ++i) {
    const pb::ForwardRequest& f = req.items(i);
    if (grpc::Status st = CheckForwardShape(f, self, max_batch); !st.ok())
      return Bad("item " + std::to_string(i) + ": " + st.error_message());
    if (i > 0 && (f.route_size() > 0 || f.to_await() != req.items(0).to_await()))
      return Bad("item " + std::to_string(i) + ": only the first item carries the route");
    if (!sessions.insert(f.session_id()).second)
      return Bad("item " + std::to_string(i) + ": session " + f.session_id().substr(0, 64) +
                 " comes twice");
    total += f.n();
  }
  if (total > max_batch)
    return Bad(std::to_string(total) + " positions in all: a ForwardMany carries at most " +
               std::to_string(max_batch));
  return grpc::Status::OK;
}

grpc::Status CheckRoute(const pb::ForwardRequest& first, int items, const pb::ServedRange& self) {
  if (first.route_size() > 64) return Bad("a route of more than 64 stages");
  for (const pb::Hop& h : first.route()) {
    if (h.address().empty() || h.address().size() > 256)
      return Bad("a route's stage has no address, or one over 256 bytes");
    if (h.session_ids_size() != items)
      return Bad("a route's stage names " + std::to_string(h.session_ids_size()) +
                 " sessions for " + std::to_string(items) + " items");
  }
  if (first.to_await() && (!self.has_head() || first.route_size() > 0))
    return Bad("only the last stage keeps replies for Await");
  if (!first.route().empty() && self.has_head())
    return Bad("the last stage has no stage to push to");
  return grpc::Status::OK;
}

grpc::Status CheckForwardPosition(const pb::ForwardRequest& req, int64_t n_past, int64_t n_ctx,
                                  int64_t kept_from) {
  const int64_t position = req.position();
  if (position > n_past)
    return Bad("position " + std::to_string(position) + " is past the session's " +
               std::to_string(n_past) + " positions");
  if (position > 0 && position < n_past && position < kept_from)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "position " + std::to_string(position) +
                            ": this stage's sliding-window layers keep the session's positions "
                            "from " +
                            std::to_string(kept_from) + " on only; go back to 0 instead");
  if (position + static_cast<int64_t>(req.n()) > n_ctx)
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "the context is full: position " + std::to_string(position) + " + " +
                            std::to_string(req.n()) + " exceeds the session's " +
                            std::to_string(n_ctx) + " positions");
  return grpc::Status::OK;
}

grpc::Status CheckOpenSession(const pb::OpenSessionRequest& req, uint32_t max_ctx, int* n_ctx) {
  const uint32_t want = req.n_ctx() == 0 ? max_ctx : req.n_ctx();
  if (want > max_ctx)
    return Bad("a session of " + std::to_string(want) + " positions: this stage allows " +
               std::to_string(max_ctx));
  *n_ctx = static_cast<int>(want);
  return grpc::Status::OK;
}

bool UsableRange(const pb::ServedRange& r) {
  return !r.address().empty() && r.address().size() < 256 && r.first_layer() < r.end_layer() &&
         r.end_layer() <= r.n_layer() && r.n_layer() <= kMaxLayers;
}

}  // namespace ggswarm::net
