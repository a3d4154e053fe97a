// A model ready to run on this machine: the tensor source, the tokenizer, the model, one
// LayerRange over every layer (embedding in front, head behind) and the thread pool.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "model/llama.h"
#include "runtime/evaluator.h"
#include "tokenizer/tokenizer.h"

namespace ggswarm::runtime {

// A local model opened for running: its tensor source, tokenizer and weights, checked
// against each other, and the context each sequence gets (`n_ctx` asked; 0: the model's, at
// most 4096). Engine and the batched service open models through it.
struct LocalModel {
  std::shared_ptr<TensorSource> source;
  tokenizer::Tokenizer tokenizer;
  std::shared_ptr<model::LlamaModel> model;
  int n_ctx = 0;
};
StatusOr<LocalModel> OpenLocalModel(const std::string& path, int n_ctx);

struct EngineOptions {
  int threads = 0;    // 0: one per core
  int n_ctx = 0;      // 0: the smaller of the model's context and 4096
  int n_batch = 512;  // prompt tokens per forward pass
};

class Engine : public Evaluator {
 public:
  // `path`: a GGUF file or a fragment directory.
  static StatusOr<std::unique_ptr<Engine>> Open(const std::string& path,
                                                const EngineOptions& opts = {});

  const tokenizer::Tokenizer& tokenizer() const override { return tokenizer_; }
  const model::LlamaConfig& config() const { return model_->config(); }
  TensorSource& source() { return model_->source(); }
  int n_ctx() const override { return layers_->n_ctx(); }
  int n_past() const override { return layers_->n_past(); }
  int threads() const { return pool_->size(); }

  // Feeds `tokens` at the next positions (in batches of n_batch) and leaves the logits of
  // the last one in `logits` (n_vocab floats).
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits) override;

  // Forgets every position from `n` on (0: start over); false (and nothing changed) where a
  // sliding window's layers no longer hold what position n needs (LayerRange::Truncate).
  bool Truncate(int n) { return layers_->Truncate(n); }
  void Reset() override { Truncate(0); }

  // Maps (and, from fragments, checks) every weight now rather than on first use.
  Status Preload() { return model_->MapAll(); }

  ThreadPool& pool() { return *pool_; }

 private:
  Engine(tokenizer::Tokenizer tok) : tokenizer_(std::move(tok)) {}
  tokenizer::Tokenizer tokenizer_;
  std::shared_ptr<model::LlamaModel> model_;
  std::unique_ptr<model::LayerRange> layers_;
  std::unique_ptr<ThreadPool> pool_;
  model::MatMulScratch head_scratch_;
  int n_batch_ = 512;
  std::vector<float> hidden_;
};

}  // namespace ggswarm::runtime
