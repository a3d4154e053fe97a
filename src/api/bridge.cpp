#include "api/bridge.h"

#include "api/open_model.h"
#include "runtime/generate.h"

namespace ggswarm {

StatusOr<std::unique_ptr<Bridge>> Bridge::Open(const std::string& path, int threads,
                                               const std::string& token) {
  BridgeOptions o;
  o.threads = threads;
  o.token = token;
  return Open(path, o);
}

StatusOr<std::unique_ptr<Bridge>> Bridge::Open(const std::string& path, const BridgeOptions& bo) {
  api::OpenOptions o;
  o.threads = bo.threads;
  o.n_ctx = bo.n_ctx;
  o.token = bo.token;
  o.f16_hidden = bo.f16_hidden;
  o.tls_ca = bo.tls_ca;
  o.dht_bootstrap = bo.dht_bootstrap;
  o.verify_fraction = bo.verify_fraction;
  auto m = api::OpenModel(path, o);
  if (!m.ok()) return m.status();
  auto b = std::unique_ptr<Bridge>(new Bridge());
  b->engine_ = std::move(m->eval);
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
  return stream(prompt, p, [&](std::string_view s) {
    if (on_text) on_text(s);
    return true;
  });
}

std::string Bridge::stream(const std::string& prompt, const GenerateParams& p,
                           const std::function<bool(std::string_view)>& on_piece) {
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
  auto r = runtime::Generate(
      *engine_, engine_->tokenizer().Encode(prompt), o,
      [&](const std::string& s, int32_t) { return s.empty() || !on_piece || on_piece(s); });
  if (!r.ok()) throw Error(r.status());
  return r->text;
}

}  // namespace ggswarm
