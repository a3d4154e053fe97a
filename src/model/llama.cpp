#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include "base/fp16.h"
#include "quant/dequantize.h"

namespace ggswarm::model {
namespace {

StatusOr<std::vector<float>> LoadVector(TensorSource& src, const std::string& name) {
  auto v = src.Get(name);
  if (!v.ok()) return v.status();
  std::vector<float> out(v->info->n_elements);
  if (v->shards.size() != 1)
    return Status::Corruption("vector tensor " + name + " is split into several fragments");
  GGSWARM_RETURN_IF_ERROR(Dequantize(v->type(), v->shards[0].data, out.data(), out.size()));
  return out;
}

// The shape of `rows` rows of `all` as a matrix of its own (an expert of a 3-D tensor, a
// part of a fused one), for RowsView.
gguf::TensorInfo RowsInfo(const TensorView& all, uint64_t rows) {
  gguf::TensorInfo info;
  info.name = all.info->name;
  info.type = all.info->type;
  info.shape = {all.info->shape[0], rows};
  info.n_elements = info.shape[0] * rows;
  info.size = rows * all.row_bytes;
  return info;
}

// Rows [begin, begin + rows) of `all` (an expert of a 3-D tensor, a part of a fused one), as
// a view whose shape is `info`'s.
TensorView RowsView(const TensorView& all, const gguf::TensorInfo* info, uint64_t begin,
                    uint64_t rows) {
  TensorView v;
  v.info = info;
  v.row_bytes = all.row_bytes;
  const uint64_t end = begin + rows;
  for (const TensorShard& s : all.shards) {
    const uint64_t b = std::max(begin, s.row_begin), en = std::min(end, s.row_end);
    if (b >= en) continue;
    v.shards.push_back({s.data + (b - s.row_begin) * all.row_bytes, b - begin, en - begin});
  }
  return v;
}

std::string LayerName(int l, const char* what) {
  return "blk." + std::to_string(l) + "." + what + ".weight";
}

}  // namespace

StatusOr<std::shared_ptr<LlamaModel>> LlamaModel::Load(std::shared_ptr<TensorSource> source) {
  auto c = LlamaConfig::FromGguf(source->header());
  if (!c.ok()) return c.status();
  auto m = std::shared_ptr<LlamaModel>(new LlamaModel());
  m->source_ = std::move(source);
  m->config_ = *c;
  m->layers_.resize(c->n_layer);
  return m;
}

StatusOr<const LayerWeights*> LlamaModel::Layer(int l) {
  if (l < 0 || l >= config_.n_layer)
    return Status::InvalidArgument("layer " + std::to_string(l) + " is out of range");
  std::lock_guard<std::mutex> lock(mu_);
  if (layers_[l]) return layers_[l].get();
  GGSWARM_RETURN_IF_ERROR(LoadGlobals());
  auto w = std::make_unique<LayerWeights>();
  TensorSource& s = *source_;
  auto get = [&](const char* what, TensorView* out) -> Status {
    auto v = s.Get(LayerName(l, what));
    if (!v.ok()) return v.status();
    *out = std::move(*v);
    return Status();
  };
  auto an = LoadVector(s, LayerName(l, "attn_norm"));
  if (!an.ok()) return an.status();
  w->attn_norm = std::move(*an);
  auto fn = LoadVector(s, LayerName(l, "ffn_norm"));
  if (!fn.ok()) return fn.status();
  w->ffn_norm = std::move(*fn);
  // A fused tensor's parts: views of its rows, in order.
  auto parts = [&](const char* what, std::initializer_list<std::pair<TensorView*, int>> out,
                   int first_info) -> Status {
    TensorView all;
    GGSWARM_RETURN_IF_ERROR(get(what, &all));
    uint64_t row = 0;
    int i = first_info;
    for (const auto& [view, rows] : out) {
      gguf::TensorInfo& info = w->part_info[i++];
      info = RowsInfo(all, rows);
      *view = RowsView(all, &info, row, rows);
      row += rows;
    }
    return Status();
  };
  if (config_.fused_qkv) {
    GGSWARM_RETURN_IF_ERROR(parts(
        "attn_qkv",
        {{&w->wq, config_.q_dim()}, {&w->wk, config_.kv_dim()}, {&w->wv, config_.v_dim()}}, 0));
  } else {
    GGSWARM_RETURN_IF_ERROR(get("attn_q", &w->wq));
    GGSWARM_RETURN_IF_ERROR(get("attn_k", &w->wk));
    GGSWARM_RETURN_IF_ERROR(get("attn_v", &w->wv));
  }
  GGSWARM_RETURN_IF_ERROR(get("attn_output", &w->wo));
  if (config_.moe) {
    GGSWARM_RETURN_IF_ERROR(get("ffn_gate_inp", &w->router));
    TensorView all[3];
    const char* names[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    std::vector<TensorView>* views[3] = {&w->gate_exp, &w->up_exp, &w->down_exp};
    for (int i = 0; i < 3; ++i) {
      GGSWARM_RETURN_IF_ERROR(get(names[i], &all[i]));
      const uint64_t per = all[i].info->shape[1];  // one expert: a matrix of ne1 rows
      gguf::TensorInfo& one = w->exp_info[i];
      one = RowsInfo(all[i], per);
      for (int e = 0; e < config_.n_expert; ++e)
        views[i]->push_back(RowsView(all[i], &one, static_cast<uint64_t>(e) * per, per));
    }
  } else {
    if (config_.fused_up) {
      GGSWARM_RETURN_IF_ERROR(
          parts("ffn_up", {{&w->gate, config_.n_ff}, {&w->up, config_.n_ff}}, 3));
    } else {
      GGSWARM_RETURN_IF_ERROR(get("ffn_gate", &w->gate));
      GGSWARM_RETURN_IF_ERROR(get("ffn_up", &w->up));
    }
    GGSWARM_RETURN_IF_ERROR(get("ffn_down", &w->down));
  }
  // What the architecture adds (ArchTraits): biases of q, k, v; norms of q's and k's heads.
  auto vec = [&](const std::string& name, std::vector<float>* out) -> Status {
    auto v = LoadVector(s, "blk." + std::to_string(l) + "." + name);
    if (!v.ok()) return v.status();
    *out = std::move(*v);
    return Status();
  };
  if (config_.qkv_bias) {
    GGSWARM_RETURN_IF_ERROR(vec("attn_q.bias", &w->bq));
    GGSWARM_RETURN_IF_ERROR(vec("attn_k.bias", &w->bk));
    GGSWARM_RETURN_IF_ERROR(vec("attn_v.bias", &w->bv));
  }
  if (config_.qk_norm) {
    GGSWARM_RETURN_IF_ERROR(vec("attn_q_norm.weight", &w->q_norm));
    GGSWARM_RETURN_IF_ERROR(vec("attn_k_norm.weight", &w->k_norm));
  }
  if (config_.post_norms) {
    GGSWARM_RETURN_IF_ERROR(vec("post_attention_norm.weight", &w->post_attn_norm));
    GGSWARM_RETURN_IF_ERROR(vec("post_ffw_norm.weight", &w->post_ffn_norm));
  }
  layers_[l] = std::move(w);
  return layers_[l].get();
}

// Each part of the model outside the layers loads on first use, so that a pipeline stage
// needs (and maps, and from fragments fetches) only its own: the embedding for the first,
// the output head for the last, rope_freqs (when the model has it) for every layer.
Status LlamaModel::LoadGlobals() {
  if (globals_loaded_) return Status();
  if (config_.has_rope_freqs) {
    auto r = LoadVector(*source_, "rope_freqs.weight");
    if (!r.ok()) return r.status();
    rope_freqs_ = std::move(*r);
  }
  if (config_.rope_factors) {
    auto l = LoadVector(*source_, "rope_factors_long.weight");
    if (!l.ok()) return l.status();
    auto sh = LoadVector(*source_, "rope_factors_short.weight");
    if (!sh.ok()) return sh.status();
    rope_long_ = std::move(*l);
    rope_short_ = std::move(*sh);
  }
  globals_loaded_ = true;
  return Status();
}

Status LlamaModel::LoadEmbedding() {
  if (embd_loaded_) return Status();
  auto e = source_->Get("token_embd.weight");
  if (!e.ok()) return e.status();
  embd_ = std::move(*e);
  embd_loaded_ = true;
  return Status();
}

Status LlamaModel::LoadOutput() {
  if (output_loaded_) return Status();
  auto o = source_->Get(config_.tied_output ? "token_embd.weight" : "output.weight");
  if (!o.ok()) return o.status();
  output_ = std::move(*o);
  auto n = LoadVector(*source_, "output_norm.weight");
  if (!n.ok()) return n.status();
  output_norm_ = std::move(*n);
  output_loaded_ = true;
  return Status();
}

Status LlamaModel::LoadHead() {
  GGSWARM_RETURN_IF_ERROR(LoadGlobals());
  GGSWARM_RETURN_IF_ERROR(LoadEmbedding());
  return LoadOutput();
}

Status LlamaModel::MapAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    GGSWARM_RETURN_IF_ERROR(LoadHead());
  }
  for (int l = 0; l < config_.n_layer; ++l) {
    auto w = Layer(l);
    if (!w.ok()) return w.status();
  }
  return Status();
}

Status LlamaModel::Embed(std::span<const int32_t> tokens, float* x) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    GGSWARM_RETURN_IF_ERROR(LoadEmbedding());
  }
  const int d = config_.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.n_vocab)
      return Status::InvalidArgument("token id " + std::to_string(tokens[t]) +
                                     " is outside the vocabulary (" +
                                     std::to_string(config_.n_vocab) + ")");
    GGSWARM_RETURN_IF_ERROR(Dequantize(embd_.type(), embd_.Row(tokens[t]), x + t * d, d));
    if (config_.scale_embd) {  // Gemma: × sqrt(n_embd), as a float
      const float scale = std::sqrt(static_cast<float>(d));
      for (int i = 0; i < d; ++i) x[t * d + i] *= scale;
    }
  }
  return Status();
}

Status LlamaModel::Head(const float* x, int n, float* logits, ThreadPool& pool,
                        MatMulScratch* scratch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    GGSWARM_RETURN_IF_ERROR(LoadOutput());
  }
  const int d = config_.n_embd;
  std::vector<float> xn(static_cast<size_t>(n) * d);
  for (int t = 0; t < n; ++t)
    RmsNorm(x + t * d, output_norm_.data(), xn.data() + t * d, d, config_.rms_eps);
  MatMul(output_, xn.data(), n, logits, pool, scratch);
  if (config_.final_softcap > 0) SoftCap(logits, n * config_.n_vocab, config_.final_softcap);
  // A NaN or an infinity (weights that hold one or overflow, or hidden states that did)
  // would be sampled as some token all the same: an error naming it instead.
  const size_t total = static_cast<size_t>(n) * static_cast<size_t>(config_.n_vocab);
  for (size_t i = 0; i < total; ++i)
    if (!std::isfinite(logits[i]))
      return Status::Corruption(
          "the model computed a logit that is not a finite number (" +
          std::string(std::isnan(logits[i]) ? "NaN" : "infinity") + ", token id " +
          std::to_string(i % static_cast<size_t>(config_.n_vocab)) +
          "): its weights or the hidden states it was given hold or overflow to one");
  return Status();
}

LayerRange::LayerRange(std::shared_ptr<LlamaModel> model, int begin, int end, int n_ctx, int n_seq,
                       int max_run)
    : model_(std::move(model)),
      begin_(begin),
      end_(end),
      max_run_(std::max(1, max_run)),
      n_past_(std::max(1, n_seq), 0) {
  for (int l = begin; l < end; ++l) has_local_ = has_local_ || model_->config().IsLocal(l);
  cache_.seqs.resize(std::max(1, n_seq));
  for (int s = 0; s < n_seq; ++s) Reserve(s, n_ctx);
}

namespace {

// The cells of a local layer's cache (KvCache): the windows of a run of max_run tokens.
int LocalCells(const LlamaConfig& c, int n_ctx, int max_run) {
  if (c.n_swa <= 0) return n_ctx;
  return static_cast<int>(std::min<int64_t>(n_ctx, int64_t{c.n_swa} + max_run - 1));
}

}  // namespace

uint64_t LayerRange::KvBytes(const LlamaConfig& c, int begin, int end, int n_ctx, int max_run) {
  const uint64_t cell = 2ull * (static_cast<uint64_t>(c.kv_dim()) + c.v_dim());  // f16 k and v
  uint64_t bytes = 0;
  for (int l = begin; l < end; ++l)
    bytes += cell * static_cast<uint64_t>(c.IsLocal(l) ? LocalCells(c, n_ctx, std::max(1, max_run))
                                                       : n_ctx);
  return bytes;
}

void LayerRange::Reserve(int seq, int n_ctx) {
  const LlamaConfig& c = model_->config();
  KvCache::Seq& s = cache_.seqs[seq];
  s.n_ctx = n_ctx;
  s.local_cells = has_local_ ? LocalCells(c, n_ctx, max_run_) : n_ctx;
  s.local_first = 0;
  s.k.assign(end_ - begin_, {});
  s.v.assign(end_ - begin_, {});
  if (n_ctx > 0)
    for (int l = 0; l < end_ - begin_; ++l) {
      const size_t cells = c.IsLocal(begin_ + l) ? s.local_cells : n_ctx;
      s.k[l].assign(cells * c.kv_dim(), 0);
      s.v[l].assign(cells * c.v_dim(), 0);
    }
  n_past_[seq] = 0;
}

int LayerRange::KeptFrom(int seq) const {
  // Position n's window starts at n + 1 - n_swa, which must still be in the local layers.
  const int first = cache_.seqs[seq].local_first;
  return first == 0 ? 0 : first + model_->config().n_swa - 1;
}

bool LayerRange::Truncate(int n, int seq) {
  n = std::clamp(n, 0, n_past_[seq]);
  if (n == 0) {
    cache_.seqs[seq].local_first = 0;
  } else if (n < n_past_[seq] && n < KeptFrom(seq)) {
    return false;
  }
  n_past_[seq] = n;
  return true;
}

void LayerRange::Slide(int seq, int n) {
  const LlamaConfig& c = model_->config();
  KvCache::Seq& s = cache_.seqs[seq];
  const int p = n_past_[seq];
  if (!has_local_ || p + n - s.local_first <= s.local_cells) return;
  // The run's first window starts at p + 1 - n_swa: keep p - that positions, from cell 0.
  const int from = std::max(0, p + 1 - c.n_swa);
  const size_t drop = static_cast<size_t>(from - s.local_first),
               keep = static_cast<size_t>(p - from);
  for (int l = begin_; l < end_; ++l) {
    if (!c.IsLocal(l)) continue;
    uint16_t* k = s.k[l - begin_].data();
    uint16_t* v = s.v[l - begin_].data();
    std::memmove(k, k + drop * c.kv_dim(), keep * c.kv_dim() * sizeof(uint16_t));
    std::memmove(v, v + drop * c.kv_dim(), keep * c.kv_dim() * sizeof(uint16_t));
  }
  s.local_first = from;
}

Status LayerRange::Forward(float* x, int n, ThreadPool& pool) {
  if (n <= 0) return Status();
  const SeqRun run{0, n};
  return ForwardBatch(x, std::span<const SeqRun>(&run, 1), pool);
}

Status LayerRange::ForwardBatch(float* x, std::span<const SeqRun> runs, ThreadPool& pool) {
  // The batch: every run's sequence exists, appears once and has room for its tokens.
  std::vector<bool> seen(n_seq(), false);
  int n = 0;
  for (const SeqRun& r : runs) {
    if (r.seq < 0 || r.seq >= n_seq() || seen[r.seq])
      return Status::InvalidArgument("sequence " + std::to_string(r.seq) +
                                     " is not one of the cache's " + std::to_string(n_seq()) +
                                     " or comes twice in a batch");
    seen[r.seq] = true;
    if (r.n <= 0) return Status::InvalidArgument("a run of a batch has no tokens");
    if (n_past_[r.seq] + r.n > n_ctx(r.seq))
      return Status::InvalidArgument("context full: " + std::to_string(n_past_[r.seq]) + " + " +
                                     std::to_string(r.n) + " positions exceed the context of " +
                                     std::to_string(n_ctx(r.seq)) + " (raise --ctx)");
    n += r.n;
  }
  if (n == 0) return Status();
  // A run longer than the local layers' cells hold windows for: in pieces, when it is alone.
  for (const SeqRun& r : runs) {
    if (r.n <= max_run_ || cache_.seqs[r.seq].local_cells >= n_ctx(r.seq)) continue;
    if (runs.size() > 1)
      return Status::InvalidArgument("a run of " + std::to_string(r.n) +
                                     " tokens in a batch of several sequences: this cache takes "
                                     "at most " +
                                     std::to_string(max_run_) + " per sequence");
    const int d = model_->config().n_embd;
    for (int at = 0; at < r.n; at += max_run_) {
      const SeqRun piece{r.seq, std::min(max_run_, r.n - at)};
      GGSWARM_RETURN_IF_ERROR(
          ForwardBatch(x + static_cast<size_t>(at) * d, std::span<const SeqRun>(&piece, 1), pool));
    }
    return Status();
  }
  // Map every layer first, so that a missing or corrupt fragment fails before any state
  // changes.
  std::vector<const LayerWeights*> ws;
  for (int l = begin_; l < end_; ++l) {
    auto w = model_->Layer(l);
    if (!w.ok()) return w.status();
    ws.push_back(*w);
  }
  for (const SeqRun& r : runs) Slide(r.seq, r.n);
  // Each token's sequence and position; the groups that share their products: the
  // single-token runs together (as long as the row dots take them), and runs of several
  // tokens (prompt chunks) with what comes before them while the group holds at most
  // `exact_` tokens: the least model::ExactBatch of the layers' matrices, up to which every
  // CPU gives each token of a batch the bits it gets alone, so each token's result is still
  // the one its run alone gives. A longer run goes alone.
  if (exact_ == 0) {  // the layers' types do not change: once
    exact_ = kRowDotMaxTokens;
    for (const LayerWeights* lw : ws)
      for (const TensorView* m :
           {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->gate, &lw->up, &lw->down})
        if (m->info) exact_ = std::min(exact_, ExactBatch(m->type()));
  }
  n_ = n;
  runs_ = runs;
  run_first_.clear();
  at_.clear();
  groups_.clear();
  bool singles = false;  // the last group holds single-token runs only
  for (const SeqRun& r : runs) {
    run_first_.push_back(static_cast<int>(at_.size()));
    bool joins = false;
    if (!groups_.empty())
      joins = r.n == 1 && singles ? groups_.back().n < kRowDotMaxTokens
                                  : groups_.back().n + r.n <= exact_;
    if (joins) {
      groups_.back().n += r.n;
      singles = singles && r.n == 1;
    } else {
      groups_.push_back({static_cast<int>(at_.size()), r.n});
      singles = r.n == 1;
    }
    for (int t = 0; t < r.n; ++t) at_.push_back({r.seq, n_past_[r.seq] + t});
  }
  // The rotations depend on the position (and, with Phi-3's factors, on the sequence's
  // context) only: their angles once for every layer.
  const LlamaConfig& c = model_->config();
  auto factors = [&](int t) {
    const std::vector<float>& f = model_->RopeFactors(n_ctx(at_[t].seq));
    return f.empty() ? nullptr : f.data();
  };
  rope_cs_.resize(static_cast<size_t>(n) * c.rope_dim);
  RopeScaling scaling;
  scaling.freq_scale = c.rope_freq_scale;
  scaling.ext_factor = c.yarn_ext_factor;
  scaling.attn_factor = c.yarn_attn_factor;
  scaling.corr_dims[0] = c.yarn_corr_dims[0];
  scaling.corr_dims[1] = c.yarn_corr_dims[1];
  for (int t = 0; t < n; ++t)
    RopeAngles(c.rope_dim, at_[t].pos, c.rope_base, factors(t),
               rope_cs_.data() + static_cast<size_t>(t) * c.rope_dim, scaling);
  if (c.n_swa > 0) {  // the local layers' own base and scale
    rope_cs_local_.resize(rope_cs_.size());
    scaling.freq_scale = c.rope_freq_scale_swa;
    for (int t = 0; t < n; ++t)
      RopeAngles(c.rope_dim, at_[t].pos, c.rope_base_swa, factors(t),
                 rope_cs_local_.data() + static_cast<size_t>(t) * c.rope_dim, scaling);
  }
  for (int l = begin_; l < end_; ++l) {
    const LayerWeights* next = l + 1 < end_ ? ws[l + 1 - begin_] : nullptr;
    const Status st = ForwardLayer(l, *ws[l - begin_], next, x, pool);
    if (!st.ok()) {
      ForgetNext(pool);
      return st;
    }
  }
  ForgetNext(pool);  // the layers' maps are not held past this call
  for (const SeqRun& r : runs) n_past_[r.seq] += r.n;
  runs_ = {};
  return Status();
}

void LayerRange::PerToken(ThreadPool& pool, const std::function<void(int)>& f) {
  // Per-token work is spread over the pool too: with many tokens, what one thread does
  // alone is what the second core waits for.
  pool.Run(n_, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) f(static_cast<int>(t));
  });
}

void LayerRange::GroupMatMuls(std::initializer_list<MatMulPart> parts, const float* x,
                              ThreadPool& pool, std::initializer_list<MatMulPart> next) {
  const int64_t cols = static_cast<int64_t>(parts.begin()->w->cols());
  std::vector<MatMulPart> at(parts);
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& gr = groups_[g];
    for (size_t i = 0; i < at.size(); ++i)
      at[i].y = parts.begin()[i].y + static_cast<int64_t>(gr.first) * parts.begin()[i].w->rows();
    // Only the last group's products are followed by `next`.
    const bool last = g + 1 == groups_.size();
    const float* xg = x + static_cast<int64_t>(gr.first) * cols;
    if (at.size() == 1)
      MatMul(*at[0].w, xg, gr.n, at[0].y, pool, &scratch_,
             last ? next : std::initializer_list<MatMulPart>{});
    else if (at.size() == 2)
      MatMuls({at[0], at[1]}, xg, gr.n, pool, &scratch_,
              last ? next : std::initializer_list<MatMulPart>{});
    else
      MatMuls({at[0], at[1], at[2]}, xg, gr.n, pool, &scratch_,
              last ? next : std::initializer_list<MatMulPart>{});
  }
}

Status LayerRange::ForwardLayer(int l, const LayerWeights& w, const LayerWeights* next, float* x,
                                ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const size_t n = static_cast<size_t>(n_);
  xn_.resize(n * c.n_embd);
  q_.resize(n * c.q_dim());
  k_.resize(n * c.kv_dim());
  v_.resize(n * c.kv_dim());
  att_.resize(n * c.q_dim());
  const int ff = c.moe ? c.n_ff_exp : c.n_ff;
  tmp_.resize(n * std::max(c.n_embd, ff));
  gate_.resize(n * ff);
  up_.resize(n * ff);
  AttentionBlock(l, w, x, pool);
  if (c.moe)
    ExpertsBlock(w, x, pool);
  else
    FeedForwardBlock(w, next, x, pool);
  return Status();
}

void LayerRange::AttentionBlock(int l, const LayerWeights& w, float* x, ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const int d = c.n_embd, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  // xn = norm(x); q, k, v = W·xn. Each product announces the one after it, whose first
  // rows the threads then read while they would wait (ThreadPool::Announce).
  PerToken(pool, [&](int t) {
    RmsNorm(x + t * d, w.attn_norm.data(), xn_.data() + t * d, d, c.rms_eps);
  });
  GroupMatMuls({{&w.wq, q_.data()}, {&w.wk, k_.data()}, {&w.wv, v_.data()}}, xn_.data(), pool,
               {{&w.wo, tmp_.data()}});
  // rope(q, k); k and v into the token's cell of its sequence.
  const auto rope = c.rope_style == RopeStyle::kNeox ? RopeApplyNeox : RopeApply;
  PerToken(pool, [&](int t) {
    float* q = q_.data() + t * qd;
    float* k = k_.data() + t * kvd;
    if (!w.bq.empty()) {  // + biases (Qwen2)
      float* v = v_.data() + t * kvd;
      for (int i = 0; i < qd; ++i) q[i] += w.bq[i];
      for (int i = 0; i < kvd; ++i) k[i] += w.bk[i];
      for (int i = 0; i < kvd; ++i) v[i] += w.bv[i];
    }
    if (!w.q_norm.empty()) {  // each head normed (Qwen3)
      for (int h = 0; h < c.n_head; ++h)
        RmsNorm(q + h * hd, w.q_norm.data(), q + h * hd, hd, c.rms_eps);
      for (int h = 0; h < c.n_head_kv; ++h)
        RmsNorm(k + h * hd, w.k_norm.data(), k + h * hd, hd, c.rms_eps);
    }
    const float* cs =
        (c.IsLocal(l) ? rope_cs_local_ : rope_cs_).data() + static_cast<size_t>(t) * c.rope_dim;
    for (int h = 0; h < c.n_head; ++h) rope(q + h * hd, c.rope_dim, cs);
    for (int h = 0; h < c.n_head_kv; ++h) rope(k + h * hd, c.rope_dim, cs);
    if (c.attn_temp_scale != 0) {  // the query's temperature at this position (Mistral 3)
      const float scale = static_cast<float>(
          std::log(std::floor(static_cast<float>(at_[t].pos) / c.attn_temp_floor) + 1.0) *
              c.attn_temp_scale +
          1.0);
      for (int i = 0; i < qd; ++i) q[i] *= scale;
    }
    if (c.q_scale > 0)  // Phi-3, Gemma scale q before attention (whose own scale is then 1)
      for (int i = 0; i < qd; ++i) q[i] *= c.q_scale;
    KvCache::Seq& sc = cache_.seqs[at_[t].seq];
    const size_t cell = Cell(l, at_[t].seq, at_[t].pos);
    uint16_t* kc = sc.k[l - begin_].data() + cell * kvd;
    uint16_t* vc = sc.v[l - begin_].data() + cell * kvd;
    for (int i = 0; i < kvd; ++i) {
      kc[i] = FloatToHalf(k_[t * kvd + i]);
      vc[i] = FloatToHalf(v_[t * kvd + i]);
    }
  });
  Attend(l, pool);
  // The feed-forward's first product is announced: gate and up, or the experts' router.
  if (c.moe)
    GroupMatMuls({{&w.wo, tmp_.data()}}, att_.data(), pool, {{&w.router, route_.data()}});
  else
    GroupMatMuls({{&w.wo, tmp_.data()}}, att_.data(), pool,
                 {{&w.gate, gate_.data()}, {&w.up, up_.data()}});
  AddResidual(w.post_attn_norm, x, pool);
}

void LayerRange::AddResidual(const std::vector<float>& post_norm, float* x, ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const int d = c.n_embd;
  PerToken(pool, [&](int t) {
    float* y = tmp_.data() + static_cast<size_t>(t) * d;
    if (!post_norm.empty()) RmsNorm(y, post_norm.data(), y, d, c.rms_eps);
    for (int i = 0; i < d; ++i) x[t * d + i] += y[i];
  });
}

void LayerRange::Attend(int l, ThreadPool& pool) {
  // Causal attention per (token, head), computed as llama.cpp's CPU flash attention does
  // (its default): q rounded to f16, one pass with a running maximum, and the weighted sum
  // of values kept in f16 (rounded after every step), divided by the softmax sum at the end.
  // Long runs (as for the bf16 tiles) keep everything after q in f32 instead, with the
  // sequence's cached keys transposed and its values widened once per layer
  // (kernels::AttendF32).
  const LlamaConfig& c = model_->config();
  const int hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  const int group = c.n_head / c.n_head_kv;
  const float scale = c.q_scale > 0 ? 1.0f : 1.0f / std::sqrt(static_cast<float>(hd));
  const float cap = c.attn_softcap;
  // A token's first visible position: in a local layer, the window's.
  const bool local = c.IsLocal(l);
  auto window_start = [&](int t) { return local ? std::max(0, at_[t].pos + 1 - c.n_swa) : 0; };
  const bool fast = kernels::HasAttention(hd);
  // Position j of a sequence's cache, its keys and values.
  auto kc = [&](int seq, int j) {
    return cache_.seqs[seq].k[l - begin_].data() + Cell(l, seq, j) * kvd;
  };
  auto vc = [&](int seq, int j) {
    return cache_.seqs[seq].v[l - begin_].data() + Cell(l, seq, j) * kvd;
  };
  auto wide = [&](const SeqRun& r) {
    return kernels::HasF32Attention(hd) && r.n >= kBf16MinTokens;
  };
  // Every (token, key/value head) of the runs in f16, as one job; the last tokens of each
  // run attend to the most positions, so the jobs go from the batch's end to its start and
  // the short ones at the end even out the threads.
  std::vector<int> f16_tokens;
  for (size_t i = runs_.size(); i-- > 0;)
    if (!wide(runs_[i]))
      for (int t = run_first_[i] + runs_[i].n - 1; t >= run_first_[i]; --t) f16_tokens.push_back(t);
  pool.Run(static_cast<int64_t>(f16_tokens.size()) * c.n_head_kv, [&](int64_t b, int64_t e, int) {
    for (int64_t job = b; job < e; ++job) {
      const int t = f16_tokens[job / c.n_head_kv];
      const int g = static_cast<int>(job % c.n_head_kv);
      const int h0 = g * group;  // the query heads that share key/value head g
      const int j0 = window_start(t);
      const int seq = at_[t].seq;
      (fast ? kernels::AttendF16 : kernels::AttendF16Reference)(
          q_.data() + t * qd + h0 * hd, group, kc(seq, j0) + g * hd, vc(seq, j0) + g * hd, kvd,
          at_[t].pos + 1 - j0, hd, scale, att_.data() + t * qd + h0 * hd, cap);
    }
  });
  for (size_t i = 0; i < runs_.size(); ++i) {
    const SeqRun& r = runs_[i];
    if (!wide(r)) continue;
    const int first = run_first_[i];
    // Positions [j_first, total) as columns from 0: every window of the run.
    const int j_first = window_start(first);
    const int total = at_[first + r.n - 1].pos + 1, cols = total - j_first;
    const int64_t kts = (cols + 15) / 16 * 16;
    // (16 more columns: a window's first column need not be a multiple of 16, and the
    // kernel reads up to the next one)
    kt_.assign(static_cast<size_t>(c.n_head_kv) * hd * kts + 16, 0.0f);
    vf_.resize(static_cast<size_t>(c.n_head_kv) * cols * hd);
    pool.Run(c.n_head_kv, [&](int64_t b, int64_t e, int) {
      for (int64_t g = b; g < e; ++g) {
        float* kt = kt_.data() + g * hd * kts;
        float* vf = vf_.data() + g * cols * hd;
        for (int j = 0; j < cols; ++j) {
          const uint16_t* kr = kc(r.seq, j_first + j) + g * hd;
          const uint16_t* vr = vc(r.seq, j_first + j) + g * hd;
          for (int d = 0; d < hd; ++d) {
            kt[d * kts + j] = HalfToFloat(kr[d]);
            vf[static_cast<size_t>(j) * hd + d] = HalfToFloat(vr[d]);
          }
        }
      }
    });
    pool.Run(static_cast<int64_t>(r.n) * c.n_head_kv, [&](int64_t b, int64_t e, int) {
      for (int64_t job = b; job < e; ++job) {
        const int t = first + r.n - 1 - static_cast<int>(job / c.n_head_kv);
        const int g = static_cast<int>(job % c.n_head_kv);
        const int h0 = g * group;
        const int j0 = window_start(t) - j_first;
        kernels::AttendF32(q_.data() + t * qd + h0 * hd, group, kt_.data() + g * hd * kts + j0, kts,
                           vf_.data() + (static_cast<size_t>(g) * cols + j0) * hd,
                           at_[t].pos + 1 - window_start(t), hd, scale,
                           att_.data() + t * qd + h0 * hd, cap);
      }
    });
  }
}

void LayerRange::ExpertsBlock(const LayerWeights& w, float* x, ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const int d = c.n_embd, ne = c.n_expert, k = c.n_expert_used, ff = c.n_ff_exp;
  PerToken(pool,
           [&](int t) { RmsNorm(x + t * d, w.ffn_norm.data(), xn_.data() + t * d, d, c.rms_eps); });
  // The router: softmax over every expert, the top k, their weights renormalised over the
  // k, each step rounded as ggml's soft_max, argsort_top_k, sum_rows and div round it.
  route_.resize(static_cast<size_t>(n_) * ne);
  MatMul(w.router, xn_.data(), n_, route_.data(), pool, &scratch_);
  // (Buffers kept between calls: no allocation per token and layer.)
  std::vector<float>& weight = weight_;
  weight.resize(static_cast<size_t>(n_) * k);
  auto& users = users_;  // per expert: (token, slot)
  users.resize(ne);
  for (auto& u : users) u.clear();
  for (int t = 0; t < n_; ++t) {
    float* p = route_.data() + static_cast<size_t>(t) * ne;
    const float mx = *std::max_element(p, p + ne);
    double sum = 0;
    for (int e = 0; e < ne; ++e) sum += (p[e] = std::exp(p[e] - mx));
    const float inv = static_cast<float>(1.0 / sum);
    for (int e = 0; e < ne; ++e) p[e] *= inv;
    std::vector<int>& order = order_;
    order.resize(ne);
    for (int e = 0; e < ne; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double wsum = 0;
    for (int j = 0; j < k; ++j) wsum += p[order[j]];
    for (int j = 0; j < k; ++j) {
      weight[t * k + j] = p[order[j]] / static_cast<float>(wsum);
      users[order[j]].push_back({t, j});
    }
  }
  eo_.resize(static_cast<size_t>(n_) * k * d);
  if (n_ == 1) {
    // One token (a sequence's generation): its k experts' gates and ups as one job on its
    // input, then their downs as one job, each on its own expert's product; the same rows'
    // dots as expert by expert, without 2k hand-offs between the threads.
    gate_.resize(static_cast<size_t>(k) * ff);
    up_.resize(static_cast<size_t>(k) * ff);
    std::vector<MatMulPart>& parts = parts_;
    parts.clear();
    for (int j = 0; j < k; ++j) {
      const int e = order_[j];
      parts.push_back({&w.gate_exp[e], gate_.data() + static_cast<size_t>(j) * ff});
      parts.push_back({&w.up_exp[e], up_.data() + static_cast<size_t>(j) * ff});
    }
    MatMuls(parts, xn_.data(), 1, pool, &scratch_);
    parts.clear();
    for (int j = 0; j < k; ++j) {
      float* g = gate_.data() + static_cast<size_t>(j) * ff;
      SwiGlu(g, up_.data() + static_cast<size_t>(j) * ff, g, ff);
      parts.push_back({&w.down_exp[order_[j]], eo_.data() + static_cast<size_t>(j) * d, g});
    }
    MatMuls(parts, nullptr, 1, pool, &scratch_);
  } else {
    // Each expert once, for every token that chose it: gate and up, silu(gate) * up, down.
    xe_.resize(static_cast<size_t>(n_) * d);
    for (int e = 0; e < ne; ++e) {
      const auto& u = users[e];
      if (u.empty()) continue;
      const int m = static_cast<int>(u.size());
      for (int i = 0; i < m; ++i)
        std::copy_n(xn_.data() + static_cast<size_t>(u[i].first) * d, d, xe_.data() + i * d);
      MatMuls({{&w.gate_exp[e], gate_.data()}, {&w.up_exp[e], up_.data()}}, xe_.data(), m, pool,
              &scratch_);
      for (int i = 0; i < m; ++i) {
        const size_t o = static_cast<size_t>(i) * ff;
        SwiGlu(gate_.data() + o, up_.data() + o, gate_.data() + o, ff);
      }
      MatMul(w.down_exp[e], gate_.data(), m, tmp_.data(), pool, &scratch_);
      for (int i = 0; i < m; ++i)
        std::copy_n(tmp_.data() + static_cast<size_t>(i) * d, d,
                    eo_.data() + (static_cast<size_t>(u[i].first) * k + u[i].second) * d);
    }
  }
  // x += Σ_j weight_j · expert_j(x), summed in the order of the choice.
  PerToken(pool, [&](int t) {
    float* acc = tmp_.data() + static_cast<size_t>(t) * d;
    for (int j = 0; j < k; ++j) {
      const float wj = weight[t * k + j];
      const float* y = eo_.data() + (static_cast<size_t>(t) * k + j) * d;
      for (int i = 0; i < d; ++i) acc[i] = j == 0 ? y[i] * wj : acc[i] + y[i] * wj;
    }
    for (int i = 0; i < d; ++i) x[t * d + i] += acc[i];
  });
}

void LayerRange::FeedForwardBlock(const LayerWeights& w, const LayerWeights* next, float* x,
                                  ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const int d = c.n_embd;
  PerToken(pool,
           [&](int t) { RmsNorm(x + t * d, w.ffn_norm.data(), xn_.data() + t * d, d, c.rms_eps); });
  GroupMatMuls({{&w.gate, gate_.data()}, {&w.up, up_.data()}}, xn_.data(), pool,
               {{&w.down, tmp_.data()}});
  const auto glu = c.gelu ? GeluGlu : SwiGlu;
  PerToken(pool, [&](int t) {
    const size_t o = static_cast<size_t>(t) * c.n_ff;
    glu(gate_.data() + o, up_.data() + o, gate_.data() + o, c.n_ff);
  });
  if (next)
    GroupMatMuls({{&w.down, tmp_.data()}}, gate_.data(), pool,
                 {{&next->wq, q_.data()}, {&next->wk, k_.data()}, {&next->wv, v_.data()}});
  else
    GroupMatMuls({{&w.down, tmp_.data()}}, gate_.data(), pool);
  AddResidual(w.post_ffn_norm, x, pool);
}

}  // namespace ggswarm::model
