// Asking many stages Hello at once: a chain's DHT lookup and its choice among the stages of a
// position (net/stage_client.cpp), and ListStages. Each address gets its own call, all in
// flight together, so a round of Hellos takes as long as the slowest answer, not the sum.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stage.grpc.pb.h"

namespace ggswarm::net {

struct HelloAnswer {
  grpc::Status status;  // CANCELLED for a call let go (AskHello's `enough`)
  stage::v1::HelloReply reply;
  double rtt_s = 0;
  bool done = false;  // answered (or failed) before AskHello stopped waiting
};

using StubFn = std::function<std::unique_ptr<stage::v1::Stage::Stub>(const std::string& address)>;
// Sets a call's deadline and credentials.
using PrepareFn = std::function<void(grpc::ClientContext*)>;
// Of the answers so far (those not `done` yet are not in): whether they are enough.
using EnoughFn = std::function<bool(const std::vector<HelloAnswer>&)>;

// Hello to every one of `addresses` at once; the answers in the same order. Without `enough`
// it waits for every call (each ends by its deadline). With it, once `enough` holds, the
// calls still out are waited for as long again as that took (kStragglerS to kStragglerMaxS,
// net/stage_client.h) and then cancelled.
std::vector<HelloAnswer> AskHello(const std::vector<std::string>& addresses, const StubFn& stub,
                                  const PrepareFn& prepare, const EnoughFn& enough = nullptr);

}  // namespace ggswarm::net
