#include "model/llama.h"

#include <algorithm>
#include <cmath>
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
  GGSWARM_RETURN_IF_ERROR(get("attn_q", &w->wq));
  GGSWARM_RETURN_IF_ERROR(get("attn_k", &w->wk));
  GGSWARM_RETURN_IF_ERROR(get("attn_v", &w->wv));
  GGSWARM_RETURN_IF_ERROR(get("attn_output", &w->wo));
  GGSWARM_RETURN_IF_ERROR(get("ffn_gate", &w->gate));
  GGSWARM_RETURN_IF_ERROR(get("ffn_up", &w->up));
  GGSWARM_RETURN_IF_ERROR(get("ffn_down", &w->down));
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
  return Status();
}

LayerRange::LayerRange(std::shared_ptr<LlamaModel> model, int begin, int end, int n_ctx)
    : model_(std::move(model)), begin_(begin), end_(end) {
  const LlamaConfig& c = model_->config();
  cache_.n_ctx = n_ctx;
  cache_.k.resize(end - begin);
  cache_.v.resize(end - begin);
  for (int l = 0; l < end - begin; ++l) {
    cache_.k[l].assign(static_cast<size_t>(n_ctx) * c.kv_dim(), 0);
    cache_.v[l].assign(static_cast<size_t>(n_ctx) * c.v_dim(), 0);
  }
}

Status LayerRange::Forward(float* x, int n, ThreadPool& pool) {
  if (n <= 0) return Status();
  if (n_past_ + n > cache_.n_ctx)
    return Status::InvalidArgument("context full: " + std::to_string(n_past_) + " + " +
                                   std::to_string(n) + " positions exceed the context of " +
                                   std::to_string(cache_.n_ctx) + " (raise --ctx)");
  // Map every layer first, so that a missing or corrupt fragment fails before any state
  // changes.
  std::vector<const LayerWeights*> ws;
  for (int l = begin_; l < end_; ++l) {
    auto w = model_->Layer(l);
    if (!w.ok()) return w.status();
    ws.push_back(*w);
  }
  // The rotations depend on the position only: their angles once for every layer.
  const LlamaConfig& c = model_->config();
  const float* ff = model_->rope_freqs().empty() ? nullptr : model_->rope_freqs().data();
  rope_cs_.resize(static_cast<size_t>(n) * c.rope_dim);
  for (int t = 0; t < n; ++t)
    RopeAngles(c.rope_dim, n_past_ + t, c.rope_base, ff,
               rope_cs_.data() + static_cast<size_t>(t) * c.rope_dim);
  for (int l = begin_; l < end_; ++l) {
    const LayerWeights* next = l + 1 < end_ ? ws[l + 1 - begin_] : nullptr;
    const Status st = ForwardLayer(l, *ws[l - begin_], next, x, n, pool);
    if (!st.ok()) {
      ForgetNext(pool);
      return st;
    }
  }
  ForgetNext(pool);  // the layers' maps are not held past this call
  n_past_ += n;
  return Status();
}

Status LayerRange::ForwardLayer(int l, const LayerWeights& w, const LayerWeights* next, float* x,
                                int n, ThreadPool& pool) {
  const LlamaConfig& c = model_->config();
  const int d = c.n_embd, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  const int group = c.n_head / c.n_head_kv;
  const int pos0 = n_past_;
  xn_.resize(static_cast<size_t>(n) * d);
  q_.resize(static_cast<size_t>(n) * qd);
  k_.resize(static_cast<size_t>(n) * kvd);
  v_.resize(static_cast<size_t>(n) * kvd);
  att_.resize(static_cast<size_t>(n) * qd);
  tmp_.resize(static_cast<size_t>(n) * std::max(d, c.n_ff));

  // Per-token work is spread over the pool too: with many tokens, what one thread does
  // alone is what the second core waits for.
  auto per_token = [&](const std::function<void(int)>& f) {
    pool.Run(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) f(static_cast<int>(t));
    });
  };

  // Attention block: xn = norm(x); q, k, v = W·xn; rope(q, k); cache k, v.
  per_token(
      [&](int t) { RmsNorm(x + t * d, w.attn_norm.data(), xn_.data() + t * d, d, c.rms_eps); });
  // Each product announces the one after it, whose first rows the threads then read while
  // they would wait (ThreadPool::Announce).
  MatMuls({{&w.wq, q_.data()}, {&w.wk, k_.data()}, {&w.wv, v_.data()}}, xn_.data(), n, pool,
          &scratch_, {{&w.wo, tmp_.data()}});
  AlignedVector<uint16_t>& kc = cache_.k[l - begin_];
  AlignedVector<uint16_t>& vc = cache_.v[l - begin_];
  per_token([&](int t) {
    const float* cs = rope_cs_.data() + static_cast<size_t>(t) * c.rope_dim;
    for (int h = 0; h < c.n_head; ++h) RopeApply(q_.data() + t * qd + h * hd, c.rope_dim, cs);
    for (int h = 0; h < c.n_head_kv; ++h) RopeApply(k_.data() + t * kvd + h * hd, c.rope_dim, cs);
    for (int i = 0; i < kvd; ++i) {
      kc[static_cast<size_t>(pos0 + t) * kvd + i] = FloatToHalf(k_[t * kvd + i]);
      vc[static_cast<size_t>(pos0 + t) * kvd + i] = FloatToHalf(v_[t * kvd + i]);
    }
  });

  // Causal attention per (token, head), computed as llama.cpp's CPU flash attention does
  // (its default): q rounded to f16, one pass with a running maximum, and the weighted sum
  // of values kept in f16 (rounded after every step), divided by the softmax sum at the end.
  // Long batches (as for the bf16 tiles) keep everything after q in f32 instead, with the
  // cached keys transposed and the values widened once per layer (kernels::AttendF32).
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool fast = kernels::HasAttention(hd);
  const int total = pos0 + n;
  const bool wide = kernels::HasF32Attention(hd) && n >= kBf16MinTokens;
  const int64_t kts = (total + 15) / 16 * 16;
  if (wide) {
    kt_.assign(static_cast<size_t>(c.n_head_kv) * hd * kts, 0.0f);
    vf_.resize(static_cast<size_t>(c.n_head_kv) * total * hd);
    pool.Run(c.n_head_kv, [&](int64_t b, int64_t e, int) {
      for (int64_t g = b; g < e; ++g) {
        float* kt = kt_.data() + g * hd * kts;
        float* vf = vf_.data() + g * total * hd;
        for (int j = 0; j < total; ++j) {
          const uint16_t* kr = kc.data() + static_cast<size_t>(j) * kvd + g * hd;
          const uint16_t* vr = vc.data() + static_cast<size_t>(j) * kvd + g * hd;
          for (int d = 0; d < hd; ++d) {
            kt[d * kts + j] = HalfToFloat(kr[d]);
            vf[static_cast<size_t>(j) * hd + d] = HalfToFloat(vr[d]);
          }
        }
      }
    });
  }
  // The last tokens attend to the most positions: they are taken first, so that the short
  // jobs at the end even out the threads.
  pool.Run(static_cast<int64_t>(n) * c.n_head_kv, [&](int64_t b, int64_t e, int) {
    for (int64_t job = b; job < e; ++job) {
      const int t = n - 1 - static_cast<int>(job / c.n_head_kv);
      const int g = static_cast<int>(job % c.n_head_kv);
      const int h0 = g * group;  // the query heads that share key/value head g
      const float* qt = q_.data() + t * qd + h0 * hd;
      float* out = att_.data() + t * qd + h0 * hd;
      if (wide) {
        kernels::AttendF32(qt, group, kt_.data() + g * hd * kts, kts,
                           vf_.data() + static_cast<size_t>(g) * total * hd, pos0 + t + 1, hd,
                           scale, out);
        continue;
      }
      (fast ? kernels::AttendF16 : kernels::AttendF16Reference)(
          qt, group, kc.data() + g * hd, vc.data() + g * hd, kvd, pos0 + t + 1, hd, scale, out);
    }
  });
  MatMul(w.wo, att_.data(), n, tmp_.data(), pool, &scratch_,
         {{&w.gate, gate_.data()}, {&w.up, up_.data()}});

  // Feed-forward block: x += down(silu(gate·xn) * up·xn), xn = norm(x).
  per_token([&](int t) {
    for (int i = 0; i < d; ++i) x[t * d + i] += tmp_[t * d + i];
    RmsNorm(x + t * d, w.ffn_norm.data(), xn_.data() + t * d, d, c.rms_eps);
  });
  gate_.resize(static_cast<size_t>(n) * c.n_ff);
  up_.resize(static_cast<size_t>(n) * c.n_ff);
  MatMuls({{&w.gate, gate_.data()}, {&w.up, up_.data()}}, xn_.data(), n, pool, &scratch_,
          {{&w.down, tmp_.data()}});
  per_token([&](int t) {
    const size_t o = static_cast<size_t>(t) * c.n_ff;
    SwiGlu(gate_.data() + o, up_.data() + o, gate_.data() + o, c.n_ff);
  });
  if (next)
    MatMul(w.down, gate_.data(), n, tmp_.data(), pool, &scratch_,
           {{&next->wq, q_.data()}, {&next->wk, k_.data()}, {&next->wv, v_.data()}});
  else
    MatMul(w.down, gate_.data(), n, tmp_.data(), pool, &scratch_);
  per_token([&](int t) {
    for (int i = 0; i < d; ++i) x[t * d + i] += tmp_[t * d + i];
  });
  return Status();
}

}  // namespace ggswarm::model
