#include "runtime/engine.h"

#include <algorithm>

#include "fragments/fragment_source.h"

namespace ggswarm::runtime {

StatusOr<LocalModel> OpenLocalModel(const std::string& path, int n_ctx) {
  auto src = fragments::OpenModel(path);
  if (!src.ok()) return src.status();
  std::shared_ptr<TensorSource> source = std::move(*src);
  auto tok = tokenizer::Tokenizer::FromGguf(source->header());
  if (!tok.ok()) return tok.status().WithContext(path);
  auto m = model::LlamaModel::Load(source);
  if (!m.ok()) return m.status().WithContext(path);
  if (static_cast<size_t>((*m)->config().n_vocab) < tok->vocab().size())
    return Status::Corruption(path + ": the tokenizer has more tokens than token_embd has rows");
  const int ctx = model::ContextFor(n_ctx, (*m)->config().n_ctx_train);
  if (ctx > model::kMaxContext)
    return Status::InvalidArgument("--ctx " + std::to_string(ctx) + " is too large");
  return LocalModel{std::move(source), std::move(*tok), std::move(*m), ctx};
}

StatusOr<std::unique_ptr<Engine>> Engine::Open(const std::string& path, const EngineOptions& opts) {
  auto lm = OpenLocalModel(path, opts.n_ctx);
  if (!lm.ok()) return lm.status();
  auto e = std::unique_ptr<Engine>(new Engine(std::move(lm->tokenizer)));
  e->model_ = std::move(lm->model);
  e->n_batch_ = std::max(1, opts.n_batch);
  e->layers_ = std::make_unique<model::LayerRange>(e->model_, 0, e->model_->config().n_layer,
                                                   lm->n_ctx, 1, e->n_batch_);
  e->pool_ = std::make_unique<ThreadPool>(opts.threads);
  return e;
}

Status Engine::Eval(std::span<const int32_t> tokens, std::vector<float>* logits) {
  if (tokens.empty()) return Status::InvalidArgument("nothing to evaluate (no tokens)");
  if (n_past() + static_cast<int>(tokens.size()) > n_ctx())
    return Status::InvalidArgument("the context is full: " + std::to_string(n_past()) + " + " +
                                   std::to_string(tokens.size()) + " tokens exceed --ctx " +
                                   std::to_string(n_ctx()));
  const int d = config().n_embd;
  for (size_t at = 0; at < tokens.size(); at += n_batch_) {
    const int n = static_cast<int>(std::min<size_t>(n_batch_, tokens.size() - at));
    hidden_.resize(static_cast<size_t>(n) * d);
    GGSWARM_RETURN_IF_ERROR(model_->Embed(tokens.subspan(at, n), hidden_.data()));
    GGSWARM_RETURN_IF_ERROR(layers_->Forward(hidden_.data(), n, *pool_));
  }
  logits->resize(config().n_vocab);
  const int n_last = static_cast<int>((tokens.size() - 1) % n_batch_);
  return model_->Head(hidden_.data() + static_cast<size_t>(n_last) * d, 1, logits->data(), *pool_,
                      &head_scratch_);
}

}  // namespace ggswarm::runtime
