// Pipelined inference over gRPC (proto/stage.proto). A StageServer serves layers
// [first_layer, end_layer) of one model — with the embedding when it starts at layer 0 and
// the output head when it ends at the last — for many sessions, each with its own KV cache.
// Stages tell each other what they serve; any of them answers a client's Lookup.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace ggswarm::net {

constexpr const char* kTokenHeader = "x-ggswarm-token";
// Trailing metadata of a pushed call that failed: the first stage along the route that did.
constexpr const char* kFailedAtHeader = "x-ggswarm-failed-at";
constexpr unsigned kStageProtocolVersion = 1;

struct StageOptions {
  std::string model_path;  // GGUF file or fragment directory
  int first_layer = 0;     // serves [first_layer, end_layer)
  int end_layer = 0;       // 0: to the last layer
  std::string listen = "127.0.0.1:0";
  std::string advertise;           // HOST:PORT told to others; default: where it listens
  std::vector<std::string> peers;  // other stages to announce to, HOST:PORT
  std::string token;               // required of every caller when set
  // TLS: this stage's certificate and key (PEM; clients then need the CA), and the CA
  // certificates it checks the stages it pushes and announces to against (empty: plain).
  std::string tls_cert, tls_key, tls_ca;
  int threads = 0;  // compute threads; 0: one per core
  int max_sessions = 8;
  int max_ctx = 0;              // positions per session; 0: min(model's, 4096)
  int max_batch = 512;          // positions per Forward
  double idle_timeout_s = 300;  // a session unused this long is closed
  // A session opened but never forwarded is closed sooner: an idle client that opened
  // sessions and went away must not hold the stage's slots for the idle timeout.
  double unused_timeout_s = 15;
  uint64_t max_kv_bytes = 0;    // KV caches of all sessions together; 0: no limit
  double announce_every_s = 2;  // re-announce to peers; entries expire after 3 periods
  // The BitTorrent DHT (net/dht.h): with `dht`, a DHT node of the stage's own announces it
  // and finds the stages that serve the layers after its own. Off unless asked for.
  bool dht = false;
  std::string dht_listen;                  // UDP HOST:PORT; "": see DhtOptions
  std::vector<std::string> dht_bootstrap;  // DHT nodes to join through, HOST:PORT
  double dht_every_s = 300;                // re-announce (DHT nodes forget after 45 minutes)
  // Fault injection, for tests of honest computation only (no command-line flag reaches
  // it): every output row gets ± this fraction of its RMS added, element by element.
  float perturb_for_tests = 0;
};

using StageLogFn = std::function<void(const std::string&)>;

class StageServer {
 public:
  static StatusOr<std::unique_ptr<StageServer>> Start(const StageOptions& o, StageLogFn log);
  ~StageServer();
  int port() const;
  std::string Describe() const;         // "model layers A-B at HOST:PORT"
  std::string dht_address() const;      // its DHT node's HOST:PORT (UDP); "" without --dht
  const std::string& model_id() const;  // SHA-256 of the model's GGUF file, hex
  // Blocks until Shutdown() (from another thread or a signal handler's flag poll).
  void Wait();
  void Shutdown();
  struct Impl;

 private:
  StageServer() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ggswarm::net
