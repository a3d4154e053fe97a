// `ggswarm server`: an OpenAI-compatible HTTP API (and a chat page at /) over a
// runtime::Service — a local model decoded in batches, or a swarm chain one request at a
// time. Endpoints: POST /v1/chat/completions, POST /v1/completions (both with `stream`
// as server-sent events), GET /v1/models, GET /health, GET /metrics (Prometheus),
// POST /tokenize, POST /detokenize; for a swarm, GET /swarm (a page) and GET /v1/swarm (its
// data). Built on cpp-httplib, as llama-server is.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "base/status.h"
#include "runtime/service.h"

namespace ggswarm::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port (see Server::port)
  std::string api_key;        // non-empty: every /v1 request needs "Authorization: Bearer KEY"
  std::string chat_template;  // empty: recognised from the model
  std::string model_name;     // the id clients name; empty: general.name, else the file's name
  size_t max_body = 8 << 20;
  int timeout_s = 30;  // reading a request, writing a response
  // swarm:// models: the /v1/swarm document (HTTP status, JSON body; api/swarm_view.h).
  // Unset: /swarm and /v1/swarm answer 404.
  std::function<std::pair<int, std::string>()> swarm;
};

class Server {
 public:
  // Takes the service; binds the port (fails with a message when it cannot).
  static StatusOr<std::unique_ptr<Server>> Start(std::unique_ptr<runtime::Service> service,
                                                 const ServerOptions& o);
  ~Server();
  int port() const;
  const std::string& model_name() const;
  // Serves until Stop() (from another thread or a signal handler's thread).
  void Run();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The chat page served at / (one HTML file with its script; no build step, no CDN).
const char* ChatPageHtml();

}  // namespace ggswarm::api
