#include "api/open_model.h"

#include <algorithm>

#include "api/swarm_view.h"
#include "model/config.h"
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

// A chain's sequences as the service's scheduler sees them.
class ChainBatch final : public runtime::BatchEvaluator {
 public:
  explicit ChainBatch(std::unique_ptr<net::SwarmChain> c) : chain_(std::move(c)) {
    auto config = model::LlamaConfig::FromGguf(chain_->header());
    if (config.ok()) n_swa_ = config->n_swa;
  }
  const tokenizer::Tokenizer& tokenizer() const override { return chain_->tokenizer(); }
  const gguf::GgufFile& header() const override { return chain_->header(); }
  int n_seq() const override { return chain_->n_seq(); }
  int n_ctx() const override { return chain_->n_ctx(); }
  int n_past(int seq) const override { return chain_->n_past(seq); }
  void Reset(int seq) override { chain_->Reset(seq); }
  // A stage's sliding-window layers keep at least the last n_swa positions; past those, the
  // stages may have dropped what position n needs (LayerRange::KeptFrom), so the chain starts
  // the sequence again rather than ask.
  bool Truncate(int seq, int n) override {
    if (n_swa_ > 0 && n > 0 && n < n_past(seq) && n_past(seq) > n_swa_) return false;
    chain_->Truncate(seq, n);
    return true;
  }
  Status Step(std::span<const runtime::SeqTokens> items, std::vector<float>* logits) override {
    items_.clear();
    for (const runtime::SeqTokens& it : items) items_.push_back({it.seq, it.tokens, it.logits});
    return chain_->Step(items_, logits);
  }

 private:
  std::unique_ptr<net::SwarmChain> chain_;
  int n_swa_ = 0;  // the model's sliding window, if it has one
  std::vector<net::ChainItem> items_;
};

net::ChainOptions ChainOptionsFor(const OpenOptions& o) {
  net::ChainOptions co;
  co.token = o.token;
  co.tls_ca = o.tls_ca;
  co.dht_bootstrap = o.dht_bootstrap;
  co.n_ctx = o.n_ctx;
  co.f16_hidden = o.f16_hidden;
  co.push = o.push;
  co.verify_fraction = o.verify_fraction;
  co.log = o.log;
  return co;
}

}  // namespace

bool IsSwarmReference(const std::string& ref) {
  net::ChainOptions co;
  return net::ParseSwarmUri(ref, &co);
}

StatusOr<OpenedModel> OpenModel(const std::string& ref, const OpenOptions& o) {
  OpenedModel m;
  net::ChainOptions co = ChainOptionsFor(o);
  if (net::ParseSwarmUri(ref, &co)) {
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

StatusOr<std::unique_ptr<runtime::Service>> OpenService(
    const std::string& ref, const runtime::ServiceOptions& s, const OpenOptions& o,
    std::function<std::pair<int, std::string>()>* swarm_view) {
  if (!IsSwarmReference(ref)) return runtime::OpenBatchService(ref, s);
  // The swarm's sequences in lanes, one per stage of the chain unless told: while the last
  // stage works on one lane's step, the stages before it work on the others'.
  if (s.parallel < 1 || s.parallel > 256)
    return Status::InvalidArgument("--parallel " + std::to_string(s.parallel) +
                                   " is outside 1-256");
  net::ChainOptions co = ChainOptionsFor(o);
  net::ParseSwarmUri(ref, &co);
  GGSWARM_RETURN_IF_ERROR(net::StartDht(&co));  // one DHT node for every lane
  co.n_ctx = s.n_ctx;
  co.n_batch = s.n_batch;
  int n_lanes = s.lanes;
  int max_batch = 0;
  if (n_lanes <= 0) {  // as many as the chain has stages: a chain of one sequence to see
    co.n_seq = 1;
    auto probe = net::SwarmChain::Connect(co);
    if (!probe.ok()) return probe.status();
    n_lanes = static_cast<int>((*probe)->Describe().size());
  }
  n_lanes = std::min(n_lanes, s.parallel);
  std::vector<std::unique_ptr<runtime::BatchEvaluator>> lanes;
  std::vector<const net::SwarmChain*> chains;
  for (int lane = 0; lane < n_lanes; ++lane) {
    co.n_seq = s.parallel / n_lanes + (lane < s.parallel % n_lanes ? 1 : 0);
    auto c = net::SwarmChain::Connect(co);
    if (!c.ok()) return c.status();
    max_batch = (*c)->max_batch();
    chains.push_back(c->get());
    lanes.push_back(std::make_unique<ChainBatch>(std::move(*c)));
  }
  if (swarm_view) {
    auto view = std::make_shared<SwarmView>(co, chains);
    *swarm_view = [view] { return view->Json(); };
  }
  runtime::ServiceOptions so = s;
  so.n_batch = std::min(s.n_batch, max_batch);
  return runtime::StartBatchService(std::move(lanes), so);
}

}  // namespace ggswarm::api
