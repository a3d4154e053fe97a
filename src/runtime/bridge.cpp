// Built into the ggswarm_stage library (above src/net): a Bridge may open a swarm:// chain.
#include "runtime/bridge.h"

#include "net/stage_client.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace ggswarm {

StatusOr<std::unique_ptr<Bridge>> Bridge::Open(const std::string& path, int threads,
                                               const std::string& token) {
  auto b = std::unique_ptr<Bridge>(new Bridge());
  net::ChainOptions co;
  if (net::ParseSwarmUri(path, &co.address, &co.model)) {
    co.token = token;
    auto c = net::SwarmChain::Connect(co);
    if (!c.ok()) return c.status();
    b->engine_ = std::move(*c);
    return b;
  }
  runtime::EngineOptions o;
  o.threads = threads;
  auto e = runtime::Engine::Open(path, o);
  if (!e.ok()) return e.status();
  b->engine_ = std::move(*e);
  return b;
}

Bridge::Bridge(const std::string& path, int threads, const std::string& token) {
  auto b = Open(path, threads, token);
  if (!b.ok()) throw Error(b.status());
  engine_ = std::move((*b)->engine_);
}

Bridge::~Bridge() = default;
Bridge::Bridge(Bridge&&) noexcept = default;
Bridge& Bridge::operator=(Bridge&&) noexcept = default;

std::string Bridge::generate(const std::string& prompt, const GenerateParams& params) {
  return generate(prompt, params, {});
}

std::string Bridge::generate(const std::string& prompt, const GenerateParams& p,
                             const std::function<void(std::string_view)>& on_text) {
  engine_->Reset();
  runtime::GenerateOptions o;
  o.max_tokens = p.max_tokens;
  o.ignore_eos = p.ignore_eos;
  o.sampling.temperature = p.temperature;
  o.sampling.top_k = p.top_k;
  o.sampling.top_p = p.top_p;
  o.sampling.min_p = p.min_p;
  o.sampling.repeat_penalty = p.repeat_penalty;
  o.sampling.seed = p.seed;
  auto r = runtime::Generate(*engine_, engine_->tokenizer().Encode(prompt), o,
                             [&](const std::string& s, int32_t) {
                               if (on_text && !s.empty()) on_text(s);
                               return true;
                             });
  if (!r.ok()) throw Error(r.status());
  return r->text;
}

}  // namespace ggswarm
