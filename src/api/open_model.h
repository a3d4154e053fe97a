// One way to open what a user names as a model — a GGUF file, a fragment directory, or
// swarm://HOST:PORT/MODEL or dht://MODEL_ID — as something that evaluates tokens
// (runtime::Evaluator), with the model's GGUF header (metadata: chat template, name). Bridge,
// `ggswarm run`/`chat` and the server to come all open models through it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"
#include "runtime/evaluator.h"
#include "runtime/service.h"

namespace ggswarm::api {

struct OpenOptions {
  int threads = 0;                              // local: compute threads; 0: one per core
  int n_ctx = 0;                                // 0: the model's, at most 4096
  std::string token;                            // swarm: the stages' --token
  std::string tls_ca;                           // swarm: the stages' CA (PEM file) for TLS
  std::vector<std::string> dht_bootstrap;       // dht://: DHT nodes to join through
  bool f16_hidden = false;                      // swarm: hidden states as f16 between stages
  bool push = true;                             // swarm: stages push to each other
  double verify_fraction = 0;                   // swarm: steps checked on other stages
  std::function<void(const std::string&)> log;  // swarm: notes on the chain
};

struct OpenedModel {
  std::unique_ptr<runtime::Evaluator> eval;
  const gguf::GgufFile* header = nullptr;  // owned by `eval`
  bool remote = false;                     // a swarm chain
};

// True when `ref` names a swarm (swarm://…) rather than a file or directory.
bool IsSwarmReference(const std::string& ref);

StatusOr<OpenedModel> OpenModel(const std::string& ref, const OpenOptions& o);

// The same reference as a Service for many requests: a local model decoded in batches of
// up to s.parallel sequences; a swarm's s.parallel sequences in lanes (s.lanes; 0: one per
// stage of the chain), each lane a chain stepping its sequences together. For a swarm,
// *swarm_view (when given) is set to what the server shows at /v1/swarm (api/swarm_view.h),
// valid while the service lives.
StatusOr<std::unique_ptr<runtime::Service>> OpenService(
    const std::string& ref, const runtime::ServiceOptions& s, const OpenOptions& o,
    std::function<std::pair<int, std::string>()>* swarm_view = nullptr);

}  // namespace ggswarm::api
