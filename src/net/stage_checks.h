// The checks a stage makes on every incoming message before it allocates or computes
// anything (proto/stage.proto). Pure functions of the message and the stage's limits, so
// that the fuzz target can drive them without a server.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>

#include "stage.pb.h"

namespace ggswarm::net {

// A Forward's shape: batch size, tokens (first stage: ids inside the vocabulary) or hidden
// states (others: exactly n × n_embd values in the stated format).
grpc::Status CheckForwardShape(const stage::v1::ForwardRequest& req,
                               const stage::v1::ServedRange& self, int max_batch);
// A ForwardMany: 1 to max_items items, each a good Forward, of distinct sessions, with at
// most max_batch positions in all.
grpc::Status CheckForwardMany(const stage::v1::ForwardManyRequest& req,
                              const stage::v1::ServedRange& self, int max_batch, int max_items);
// A push route (ForwardRequest.route) for a call of `items` items: at most 64 hops, each with
// an address and one session per item; only the first item of a call carries one; to_await
// only on a stage with the head and without a route.
grpc::Status CheckRoute(const stage::v1::ForwardRequest& first, int items,
                        const stage::v1::ServedRange& self);
// Its place in a session that holds `n_past` of `n_ctx` positions, and can go back to 0 or to
// `kept_from` and after (a sliding window's layers drop older keys: LayerRange::KeptFrom).
grpc::Status CheckForwardPosition(const stage::v1::ForwardRequest& req, int64_t n_past,
                                  int64_t n_ctx, int64_t kept_from = 0);
// The positions an OpenSession asks for (0: the stage's maximum) into `*n_ctx`.
grpc::Status CheckOpenSession(const stage::v1::OpenSessionRequest& req, uint32_t max_ctx,
                              int* n_ctx);
// An announced range worth remembering: a real layer range with an address.
bool UsableRange(const stage::v1::ServedRange& r);

}  // namespace ggswarm::net
