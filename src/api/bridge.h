// The library's front door, as the Python prototype's "bridge" offered it:
//
//   ggswarm::Bridge bridge("out/tinyllama");   // a GGUF file or a fragment directory
//   ggswarm::Bridge swarm("swarm://127.0.0.1:7000/tinyllama");  // or stages of the swarm
//   std::string text = bridge.generate("Hello", {.max_tokens = 50});
//
// The constructor and generate() throw ggswarm::Error (a std::runtime_error) with a
// message naming what is wrong; Bridge::Open returns a StatusOr instead.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ggswarm {

namespace runtime {
class Evaluator;
}

class Error : public std::runtime_error {
 public:
  explicit Error(const Status& s) : std::runtime_error(s.ToString()), status_(s) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

struct GenerateParams {
  int max_tokens = 128;
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.1f;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

struct BridgeOptions {
  int threads = 0;          // local: compute threads; 0: one per core
  int n_ctx = 0;            // 0: the model's, at most 4096
  std::string token;        // swarm: the stages' --token
  bool f16_hidden = false;  // swarm: hidden states as f16 between stages
  std::string tls_ca;       // swarm: the stages' CA certificate (PEM file), when they use TLS
  std::vector<std::string> dht_bootstrap;  // dht://: DHT nodes to join through, HOST:PORT
  double verify_fraction = 0;  // swarm: steps also computed on other stages (docs/pipeline.md)
};

class Bridge {
 public:
  // `path`: a GGUF file, a fragment directory, swarm://HOST:PORT/MODEL or dht://MODEL_ID
  // (`token`: the stages' --token).
  explicit Bridge(const std::string& path, int threads = 0, const std::string& token = "");
  static StatusOr<std::unique_ptr<Bridge>> Open(const std::string& path, int threads = 0,
                                                const std::string& token = "");
  static StatusOr<std::unique_ptr<Bridge>> Open(const std::string& path, const BridgeOptions& o);
  ~Bridge();
  Bridge(Bridge&&) noexcept;
  Bridge& operator=(Bridge&&) noexcept;

  // Text that follows `prompt` (each call starts from an empty context).
  std::string generate(const std::string& prompt, const GenerateParams& params = {});
  // The same, calling `on_text` with each piece as it is produced (valid UTF-8).
  std::string generate(const std::string& prompt, const GenerateParams& params,
                       const std::function<void(std::string_view)>& on_text);
  // The same, where `on_piece` returning false stops the generation (the text so far is
  // returned; the next call starts afresh).
  std::string stream(const std::string& prompt, const GenerateParams& params,
                     const std::function<bool(std::string_view)>& on_piece);

  runtime::Evaluator& evaluator() { return *engine_; }

 private:
  Bridge() = default;
  std::unique_ptr<runtime::Evaluator> engine_;
};

}  // namespace ggswarm
