#include "api/open_model.h"

#include "net/stage_client.h"
#include "runtime/engine.h"

namespace ggswarm::api {
namespace {

// A chain of remote stages as the generation loop sees a model.
class ChainEvaluator final : public runtime::Evaluator {
 public:
  explicit ChainEvaluator(std::unique_ptr<net::SwarmChain> c) : chain_(std::move(c)) {}
  const tokenizer::Tokenizer& tokenizer() const override { return chain_->tokenizer(); }
  int n_ctx() const override { return chain_->n_ctx(); }
  int n_past() const override { return chain_->n_past(); }
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits) override {
    return chain_->Eval(tokens, logits);
  }
  void Reset() override { chain_->Reset(); }
  const gguf::GgufFile& header() const { return chain_->header(); }

 private:
  std::unique_ptr<net::SwarmChain> chain_;
};

}  // namespace

bool IsSwarmReference(const std::string& ref) {
  std::string address, model;
  return net::ParseSwarmUri(ref, &address, &model);
}

StatusOr<OpenedModel> OpenModel(const std::string& ref, const OpenOptions& o) {
  OpenedModel m;
  net::ChainOptions co;
  if (net::ParseSwarmUri(ref, &co.address, &co.model)) {
    co.token = o.token;
    co.n_ctx = o.n_ctx;
    co.f16_hidden = o.f16_hidden;
    co.log = o.log;
    auto c = net::SwarmChain::Connect(co);
    if (!c.ok()) return c.status();
    auto chain = std::make_unique<ChainEvaluator>(std::move(*c));
    m.header = &chain->header();
    m.eval = std::move(chain);
    m.remote = true;
    return m;
  }
  runtime::EngineOptions eo;
  eo.threads = o.threads;
  eo.n_ctx = o.n_ctx;
  auto e = runtime::Engine::Open(ref, eo);
  if (!e.ok()) return e.status();
  m.header = &(*e)->source().header();
  m.eval = std::move(*e);
  return m;
}

StatusOr<std::unique_ptr<runtime::Service>> OpenService(const std::string& ref,
                                                        const runtime::ServiceOptions& s,
                                                        const OpenOptions& o) {
  if (!IsSwarmReference(ref)) return runtime::OpenBatchService(ref, s);
  OpenOptions oo = o;
  oo.n_ctx = s.n_ctx;
  auto m = OpenModel(ref, oo);
  if (!m.ok()) return m.status();
  return runtime::MakeSerialService(std::move(m->eval), m->header, s.max_queue);
}

}  // namespace ggswarm::api
