// The Llama-family forward pass. LlamaModel owns the weights (through a TensorSource,
// each layer mapped on first use); LayerRange is a contiguous run of layers with its own
// KV cache — one pipeline stage. A local engine is one LayerRange over every layer with the
// embedding in front and the output head behind.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/status.h"
#include "base/thread_pool.h"
#include "gguf/tensor_source.h"
#include "model/config.h"
#include "model/ops.h"

namespace ggswarm::model {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // (n_embd)
  TensorView wq;                           // (q_dim rows × n_embd)
  TensorView wk, wv;                       // (kv_dim rows × n_embd)
  TensorView wo;                           // (n_embd rows × q_dim)
  TensorView gate, up;                     // (n_ff rows × n_embd)
  TensorView down;                         // (n_embd rows × n_ff)
  std::vector<float> bq, bk, bv;           // biases of q, k, v (qkv_bias), else empty
  std::vector<float> q_norm, k_norm;       // (head_dim) per-head norms (qk_norm), else empty
  std::vector<float> post_attn_norm, post_ffn_norm;  // (n_embd) (post_norms), else empty
  // Mixture of experts (moe): the router (n_expert rows × n_embd) and each expert's gate, up
  // (n_ff_exp rows × n_embd) and down (n_embd rows × n_ff_exp): views of its rows of the
  // 3-D tensors, whose shapes exp_info holds.
  TensorView router;
  std::vector<TensorView> gate_exp, up_exp, down_exp;
  gguf::TensorInfo exp_info[3];
  // Fused tensors (attn_qkv, ffn_up holding gate and up): wq, wk, wv, gate, up are views of
  // their rows, with these shapes.
  gguf::TensorInfo part_info[5];
};

class LlamaModel {
 public:
  // Checks the hyper-parameters and every tensor's shape; maps nothing yet.
  static StatusOr<std::shared_ptr<LlamaModel>> Load(std::shared_ptr<TensorSource> source);

  const LlamaConfig& config() const { return config_; }
  TensorSource& source() { return *source_; }

  // The weights of layer `l`, mapped (and, from fragments, checked) on first use.
  StatusOr<const LayerWeights*> Layer(int l);

  // Maps every layer and the head now.
  Status MapAll();

  // x[t] = embedding row of tokens[t]: (n × n_embd).
  Status Embed(std::span<const int32_t> tokens, float* x);

  // logits = output(norm(x)) for n rows of x (n × n_embd) into (n × n_vocab).
  Status Head(const float* x, int n, float* logits, ThreadPool& pool, MatMulScratch* scratch);

  const std::vector<float>& rope_freqs() const { return rope_freqs_; }
  // The rope frequency factors for a cache of n_ctx positions: rope_freqs, or Phi-3's long
  // factors beyond the original context and short ones within it; empty for none.
  const std::vector<float>& RopeFactors(int n_ctx) const {
    if (!rope_long_.empty()) return n_ctx > config_.n_ctx_orig ? rope_long_ : rope_short_;
    return rope_freqs_;
  }

 private:
  LlamaModel() = default;
  std::shared_ptr<TensorSource> source_;
  LlamaConfig config_;
  std::mutex mu_;
  std::vector<std::unique_ptr<LayerWeights>> layers_;
  bool globals_loaded_ = false, embd_loaded_ = false, output_loaded_ = false;
  TensorView embd_, output_;
  std::vector<float> output_norm_, rope_freqs_, rope_long_, rope_short_;
  // With mu_ held: rope_freqs; token_embd; output and output_norm; all three.
  Status LoadGlobals();
  Status LoadEmbedding();
  Status LoadOutput();
  Status LoadHead();
};

// Keys and values of past positions for a run of layers, stored as f16 (as llama.cpp's
// default cache), one block per sequence: a sequence's k[l] and v[l] are (cells × kv_dim) for
// layer l of the run, one cell per position. Each sequence has its own length, and one that is
// not in use holds no memory (a stage opens and closes sessions as clients come and go).
// A local layer (sliding window of n_swa) keeps only `local_cells` = n_swa + max_run - 1 cells
// (when that is less than n_ctx): the positions from `local_first` on, in order, enough for
// the windows of a run of up to max_run tokens. Before a run that would not fit, the window
// the run needs slides down to cell 0 (LayerRange::Slide), so that attention reads a window's
// keys in one piece, as it reads a global layer's.
struct KvCache {
  struct Seq {
    int n_ctx = 0;
    int local_cells = 0;  // cells of a local layer (n_ctx without a window)
    int local_first = 0;  // the position in a local layer's cell 0
    std::vector<AlignedVector<uint16_t>> k, v;
  };
  std::vector<Seq> seqs;
};

// Consecutive tokens of one sequence in a batch, at that sequence's next positions.
struct SeqRun {
  int seq = 0;
  int n = 0;
};

class LayerRange {
 public:
  // Layers [begin, end) of `model`, with a cache of `n_ctx` positions for each of `n_seq`
  // sequences (n_ctx 0: none yet; see Reserve). `max_run`: the most tokens of one sequence in
  // a batch (the callers' prompt chunk), which sizes the local layers' caches; a longer run is
  // taken in pieces of max_run, and refused in a batch of several sequences.
  LayerRange(std::shared_ptr<LlamaModel> model, int begin, int end, int n_ctx, int n_seq = 1,
             int max_run = kDefaultMaxRun);
  static constexpr int kDefaultMaxRun = 512;

  // The bytes of KV cache that layers [begin, end) take for one sequence of n_ctx positions.
  static uint64_t KvBytes(const LlamaConfig& c, int begin, int end, int n_ctx,
                          int max_run = kDefaultMaxRun);

  // Gives sequence `seq` a new, empty cache of n_ctx positions (0: frees its memory). Not
  // while a Forward that includes `seq` runs; other sequences' Forwards may.
  void Reserve(int seq, int n_ctx);

  // Runs the layers on hidden states x (n × n_embd), in place, for sequence 0's next n
  // positions. Fails (and changes nothing) when the cache has no room for n more.
  Status Forward(float* x, int n, ThreadPool& pool);

  // The same for a batch of several sequences: x holds the runs' tokens one run after
  // another (each sequence at most once). Every weight is read once for the single-token
  // runs together (up to kRowDotMaxTokens of them: the decoding steps of many sequences),
  // once for each group of longer runs (chunks of prompts) that fits ExactBatch of the
  // layers' matrices with what comes before it, and once for each run longer than that, so
  // each token's result is the one it gets in a batch of its run alone. Attention stays
  // within each sequence.
  Status ForwardBatch(float* x, std::span<const SeqRun> runs, ThreadPool& pool);

  int n_past(int seq = 0) const { return n_past_[seq]; }
  int n_ctx(int seq = 0) const { return cache_.seqs[seq].n_ctx; }
  int n_seq() const { return static_cast<int>(cache_.seqs.size()); }
  // Forgets positions from `n` on (n <= n_past): a later Forward continues from n. False (and
  // nothing changed) where the local layers have already dropped keys that position n's
  // window needs (n < KeptFrom(seq)); 0 always works.
  bool Truncate(int n, int seq = 0);
  // The least position besides 0 that Truncate can go back to.
  int KeptFrom(int seq = 0) const;
  int max_run() const { return max_run_; }
  int begin() const { return begin_; }
  int end() const { return end_; }

 private:
  // Tokens [first, first + n) of the batch, multiplied by the weights together.
  struct Group {
    int first = 0, n = 0;
  };
  // Where each token of the batch belongs.
  struct TokenAt {
    int seq = 0, pos = 0;
  };

  // Moves the local layers' window down for a run of n tokens at sequence seq's next position
  // (KvCache), when they would not fit.
  void Slide(int seq, int n);
  // Layer l's cell of `pos` in sequence seq's cache.
  size_t Cell(int l, int seq, int pos) const {
    return static_cast<size_t>(pos -
                               (model_->config().IsLocal(l) ? cache_.seqs[seq].local_first : 0));
  }

  // `next`: the layer after l, whose first product is announced to the pool, or null.
  Status ForwardLayer(int l, const LayerWeights& w, const LayerWeights* next, float* x,
                      ThreadPool& pool);
  // x += wo · attention(rope(wq · norm(x)), the cache with rope(wk · norm(x)), wv · norm(x)).
  void AttentionBlock(int l, const LayerWeights& w, float* x, ThreadPool& pool);
  // The experts' feed-forward (moe): each token's chosen experts, batched per expert.
  void ExpertsBlock(const LayerWeights& w, float* x, ThreadPool& pool);
  // x += down(act(gate · norm(x)) * up · norm(x)), act SiLU or GELU (Gemma), the sum
  // RMS-normed first where the architecture has post-norms.
  void FeedForwardBlock(const LayerWeights& w, const LayerWeights* next, float* x,
                        ThreadPool& pool);
  // x += tmp_ (a block's output), RMS-normed first by `post_norm` unless it is empty.
  void AddResidual(const std::vector<float>& post_norm, float* x, ThreadPool& pool);
  // Softmax(q kᵀ / √d) v for every token and head into att_, each token against its own
  // sequence's cells up to its position (in a local layer, its window's).
  void Attend(int l, ThreadPool& pool);
  // f(t) for every token of the batch, spread over the pool.
  void PerToken(ThreadPool& pool, const std::function<void(int)>& f);
  // MatMuls over every group of the batch: x is (n_ × cols); each part's y (n_ × rows).
  void GroupMatMuls(std::initializer_list<MatMulPart> parts, const float* x, ThreadPool& pool,
                    std::initializer_list<MatMulPart> next = {});

  std::shared_ptr<LlamaModel> model_;
  int begin_, end_;
  int max_run_;
  int exact_ = 0;           // the least ExactBatch of the layers' matrices (0: not known yet)
  bool has_local_ = false;  // a layer of the range has a sliding window
  KvCache cache_;
  std::vector<int> n_past_;  // per sequence
  MatMulScratch scratch_;
  // The batch in flight: its tokens, runs and groups.
  int n_ = 0;
  std::span<const SeqRun> runs_;
  std::vector<int> run_first_;  // each run's first token
  std::vector<TokenAt> at_;
  std::vector<Group> groups_;
  // Per-batch buffers: xn (n × n_embd), q (n × q_dim), k/v (n × kv_dim), att (n × q_dim),
  // gate/up (n × n_ff).
  AlignedVector<float> xn_, q_, k_, v_, att_, gate_, up_, tmp_;
  std::vector<float> rope_cs_;            // per token: its rotations' cosines and sines
  std::vector<float> rope_cs_local_;      // the same with the local layers' base and scale
  AlignedVector<float> route_, xe_, eo_;  // moe: router logits; an expert's inputs; outputs
  std::vector<float> weight_;             // moe: per token, its experts' weights
  std::vector<int> order_;                // moe: experts by probability (the last token's)
  std::vector<MatMulPart> parts_;         // moe: one token's experts' products
  std::vector<std::vector<std::pair<int, int>>> users_;  // moe: per expert, (token, slot)
  AlignedVector<float> kt_, vf_;  // long runs: cached keys transposed, values, in f32
};

}  // namespace ggswarm::model
