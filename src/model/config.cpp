#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gguf/ggml_type.h"

namespace ggswarm::model {
namespace {

constexpr int kMaxDim = 1 << 20;  // no real model has a dimension this large

Status Need(const gguf::GgufFile& f, const std::string& key, int* out, bool required,
            int fallback) {
  const gguf::Value* value = f.Find(key);
  if (!value) {
    if (required) return Status::NotFound("metadata key " + key + " is missing");
    *out = fallback;
    return Status();
  }
  auto v = value->AsInt();
  if (!v || value->type == gguf::ValueType::BOOL)
    return Status::Corruption("metadata key " + key + " has type " +
                              gguf::ValueTypeName(value->type) + ", expected an integer");
  if (*v <= 0 || *v > kMaxDim)
    return Status::Corruption(key + " = " + std::to_string(*v) + " is not a sensible size");
  *out = static_cast<int>(*v);
  return Status();
}

Status Float(const gguf::GgufFile& f, const std::string& key, float* out, float fallback) {
  const gguf::Value* v = f.Find(key);
  if (!v) {
    *out = fallback;
    return Status();
  }
  auto x = v->AsFloat();
  if (!x || v->type == gguf::ValueType::BOOL)
    return Status::Corruption("metadata key " + key + " has type " + gguf::ValueTypeName(v->type) +
                              ", expected a number");
  *out = static_cast<float>(*x);
  return Status();
}

std::string Shape(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Tensor `name` with shape `want` (ggml order; trailing dimensions of 1 beyond it ignored)
// and a type ggswarm computes with.
Status CheckShape(const gguf::GgufFile& f, const std::string& name,
                  const std::vector<uint64_t>& want, bool optional = false) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  if (!t) {
    if (optional) return Status();
    return Status::NotFound("tensor " + name + " is missing");
  }
  std::vector<uint64_t> have = t->shape;
  while (have.size() > want.size() && have.back() == 1) have.pop_back();
  if (have != want)
    return Status::Corruption("tensor " + name + " has shape " + Shape(t->shape) +
                              ", the hyper-parameters need " + Shape(want));
  if (!Traits(t->type).dequantizable)
    return Status::Unsupported("tensor " + name + " has type " + TypeName(t->type) +
                               ", which ggswarm cannot compute with");
  return Status();
}

// A matrix with `cols` inputs (ne0) and `rows` outputs (ne1), or a vector of `cols`.
Status CheckTensor(const gguf::GgufFile& f, const std::string& name, uint64_t cols, uint64_t rows,
                   bool optional = false) {
  return CheckShape(f, name, rows ? std::vector<uint64_t>{cols, rows} : std::vector<uint64_t>{cols},
                    optional);
}

constexpr ArchTraits kArchs[] = {
    // name, rope, qkv_bias, qk_norm, moe, phi3, moe_optional (llama.cpp: src/models/<name>.cpp)
    {"llama", RopeStyle::kNormal, false, false, false, false, true},
    {"mistral", RopeStyle::kNormal, false, false, false, false, true},  // llama's, renamed
    {"qwen2", RopeStyle::kNeox, true, false, false, false},
    {"qwen3", RopeStyle::kNeox, false, true, false, false},
    {"qwen3moe", RopeStyle::kNeox, false, true, true, false},
    {"mistral3", RopeStyle::kNormal, false, false, false, false, true},  // + YaRN, q temperature
    {.name = "phi3", .rope = RopeStyle::kNeox, .phi3 = true, .q_scale = true},
    {.name = "gemma2",
     .rope = RopeStyle::kNeox,
     .gelu = true,
     .scale_embd = true,
     .head_is_embd = true,
     .post_norms = true,
     .q_scale = true,
     .wide_q_scale_layers = 46,
     .attn_softcap = 50.0f,
     .final_softcap = 30.0f,
     .swa_pattern = 2,
     .swa_always = true,
     .swa_scaled = true},
    {.name = "gemma3",
     .rope = RopeStyle::kNeox,
     .qk_norm = true,
     .gelu = true,
     .scale_embd = true,
     .post_norms = true,
     .q_scale = true,
     .wide_q_scale_layers = 62,
     .swa_pattern = 6,
     .swa_base_default = 10000.0f},
};

// Which layers are local: attention.sliding_window_pattern as an array (one flag per layer)
// or a period n (layer l local unless l % n == n - 1; 0: every layer local), as llama.cpp's
// set_swa_pattern reads it; the architecture's period when absent.
Status ReadSwaPattern(const gguf::GgufFile& f, const std::string& key, int period, LlamaConfig* c) {
  c->swa_layer.assign(c->n_layer, 0);
  const gguf::Value* v = f.Find(key);
  if (v && v->type == gguf::ValueType::ARRAY) {
    if (v->count != static_cast<uint64_t>(c->n_layer))
      return Status::Corruption(key + " has " + std::to_string(v->count) + " entries for " +
                                std::to_string(c->n_layer) + " layers");
    const std::vector<gguf::Value> items = v->Items();
    for (int l = 0; l < c->n_layer; ++l) {
      auto b = l < static_cast<int>(items.size()) ? items[l].AsInt() : std::nullopt;
      if (!b) return Status::Corruption(key + " holds a value that is not a flag");
      c->swa_layer[l] = *b != 0;
    }
    return Status();
  }
  if (v) {
    auto n = v->AsInt();
    if (!n || *n < 0 || *n > kMaxDim)
      return Status::Corruption(key + " is neither a period nor one flag per layer");
    period = static_cast<int>(*n);
  }
  for (int l = 0; l < c->n_layer; ++l) c->swa_layer[l] = period == 0 || l % period < period - 1;
  return Status();
}

// rope.scaling.* and attention.temperature_scale as llama.cpp reads them (llama-model.cpp,
// llama-context.cpp): the factor gives freq_scale; YaRN adds ext_factor 1, the correction
// dimensions of ggml_rope_yarn_corr_dims and the magnitude factor, which cancels rope_yarn's
// own 1 + 0.1 ln(factor) unless yarn_log_multiplier says otherwise.
Status ReadRopeScaling(const gguf::GgufFile& f, const std::string& p, LlamaConfig* c) {
  const std::string type = f.GetString(p + "rope.scaling.type").value_or("linear");
  if (type != "none" && type != "linear" && type != "yarn")
    return Status::Unsupported("rope scaling '" + type + "' is not supported");
  float factor = 0;
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.factor", &factor, 0.0f));
  if (factor == 0) GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scale_linear", &factor, 0.0f));
  if (!(factor >= 0) || factor > 1e6)
    return Status::Corruption(p + "rope.scaling.factor is not a sensible factor");
  c->rope_freq_scale = type == "none" || factor == 0 ? 1.0f : 1.0f / factor;
  float rope_attn_factor = 1, log_mul = 0, beta_fast = 32, beta_slow = 1;
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.attn_factor", &rope_attn_factor, 1.0f));
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.yarn_log_multiplier", &log_mul, 0.0f));
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.yarn_beta_fast", &beta_fast, 32.0f));
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.yarn_beta_slow", &beta_slow, 1.0f));
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.scaling.yarn_ext_factor", &c->yarn_ext_factor,
                                type == "yarn" ? 1.0f : 0.0f));
  int orig = c->n_ctx_train;
  GGSWARM_RETURN_IF_ERROR(
      Need(f, p + "rope.scaling.original_context_length", &orig, false, c->n_ctx_train));
  c->yarn_attn_factor = 1.0f;
  if (c->yarn_ext_factor != 0) {
    auto mscale = [](float scale, float m) {
      return scale <= 1.0f ? 1.0f : (0.1f * m * std::log(scale) + 1.0f);
    };
    const float fac = 1.0f / c->rope_freq_scale;
    c->yarn_attn_factor =
        log_mul != 0 ? mscale(fac, 1.0f) / mscale(fac, log_mul) : mscale(fac, 1.0f);
    c->yarn_attn_factor *= 1.0f / (1.0f + 0.1f * std::log(fac));
    // ggml_rope_yarn_corr_dims
    auto corr = [&](float n_rot) {
      return c->rope_dim * std::log(orig / (n_rot * 2 * static_cast<float>(M_PI))) /
             (2 * std::log(c->rope_base));
    };
    c->yarn_corr_dims[0] = std::max(0.0f, std::floor(corr(beta_fast)));
    c->yarn_corr_dims[1] =
        std::min(static_cast<float>(c->rope_dim - 1), std::ceil(corr(beta_slow)));
  }
  c->yarn_attn_factor *= rope_attn_factor;
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "attention.temperature_scale", &c->attn_temp_scale, 0.0f));
  if (c->attn_temp_scale != 0) c->attn_temp_floor = orig;
  c->n_ctx_orig = orig;
  return Status();
}

}  // namespace

const ArchTraits* FindArch(const std::string& name) {
  for (const ArchTraits& a : kArchs)
    if (name == a.name) return &a;
  return nullptr;
}

std::string ArchNames() {
  std::string s;
  for (const ArchTraits& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

StatusOr<LlamaConfig> LlamaConfig::FromGguf(const gguf::GgufFile& f) {
  LlamaConfig c;
  c.arch = f.Architecture();
  const ArchTraits* arch = FindArch(c.arch);
  if (!arch)
    return Status::Unsupported("architecture '" + c.arch + "' is not supported (ggswarm runs " +
                               ArchNames() + ")");
  c.rope_style = arch->rope;
  c.qkv_bias = arch->qkv_bias;
  c.qk_norm = arch->qk_norm;
  // (An expert_count that is there but not a number turns the experts on, so that reading it
  // names the key instead of the missing dense tensors.)
  c.moe = arch->moe || (arch->moe_optional && f.Find(c.arch + ".expert_count") &&
                        f.GetInt(c.arch + ".expert_count").value_or(1) != 0);
  c.fused_up = arch->phi3;
  c.gelu = arch->gelu;
  c.scale_embd = arch->scale_embd;
  c.post_norms = arch->post_norms;
  c.fused_qkv = f.FindTensor("blk.0.attn_qkv.weight") != nullptr;
  const std::string p = c.arch + ".";
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "embedding_length", &c.n_embd, true, 0));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "block_count", &c.n_layer, true, 0));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "attention.head_count", &c.n_head, true, 0));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "attention.head_count_kv", &c.n_head_kv, false, c.n_head));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "feed_forward_length", &c.n_ff, true, 0));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "context_length", &c.n_ctx_train, false, 2048));
  if (c.n_embd % c.n_head != 0 && !f.GetInt(p + "attention.key_length"))
    return Status::Corruption("embedding_length " + std::to_string(c.n_embd) +
                              " is not a multiple of head_count " + std::to_string(c.n_head));
  GGSWARM_RETURN_IF_ERROR(
      Need(f, p + "attention.key_length", &c.head_dim, false, c.n_embd / c.n_head));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "attention.value_length", &c.head_dim_v, false, c.head_dim));
  GGSWARM_RETURN_IF_ERROR(Need(f, p + "rope.dimension_count", &c.rope_dim, false, c.head_dim));
  if (c.n_head % c.n_head_kv != 0)
    return Status::Corruption("head_count " + std::to_string(c.n_head) +
                              " is not a multiple of head_count_kv " + std::to_string(c.n_head_kv));
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0)
    return Status::Corruption("rope.dimension_count " + std::to_string(c.rope_dim) +
                              " does not fit head size " + std::to_string(c.head_dim));
  if (c.head_dim_v != c.head_dim)
    return Status::Unsupported("attention.value_length differs from key_length");
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.freq_base", &c.rope_base, 10000.0f));
  GGSWARM_RETURN_IF_ERROR(Float(f, p + "attention.layer_norm_rms_epsilon", &c.rms_eps, 1e-5f));
  if (!(c.rms_eps >= 0) || !(c.rope_base > 0))
    return Status::Corruption("rope.freq_base or layer_norm_rms_epsilon is not a positive number");
  if (c.moe) {
    GGSWARM_RETURN_IF_ERROR(Need(f, p + "expert_count", &c.n_expert, true, 0));
    GGSWARM_RETURN_IF_ERROR(Need(f, p + "expert_used_count", &c.n_expert_used, true, 0));
    if (arch->moe)
      GGSWARM_RETURN_IF_ERROR(Need(f, p + "expert_feed_forward_length", &c.n_ff_exp, true, 0));
    else
      c.n_ff_exp = c.n_ff;
    if (c.n_expert_used > c.n_expert)
      return Status::Corruption("expert_used_count " + std::to_string(c.n_expert_used) +
                                " is more than expert_count " + std::to_string(c.n_expert));
  }
  GGSWARM_RETURN_IF_ERROR(ReadRopeScaling(f, p, &c));
  if (arch->q_scale)
    c.q_scale =
        1.0f / std::sqrt(static_cast<float>(
                   c.n_layer == arch->wide_q_scale_layers ? c.n_embd / c.n_head : c.head_dim));
  GGSWARM_RETURN_IF_ERROR(
      Float(f, p + "attn_logit_softcapping", &c.attn_softcap, arch->attn_softcap));
  GGSWARM_RETURN_IF_ERROR(
      Float(f, p + "final_logit_softcapping", &c.final_softcap, arch->final_softcap));
  if (!(c.attn_softcap >= 0) || !(c.final_softcap >= 0))
    return Status::Corruption("a logit soft-capping value is not a non-negative number");
  if (arch->swa_pattern > 0) {
    const bool has = f.Find(p + "attention.sliding_window") != nullptr;
    if (has || arch->swa_always) {
      GGSWARM_RETURN_IF_ERROR(Need(f, p + "attention.sliding_window", &c.n_swa, false, 4096));
      GGSWARM_RETURN_IF_ERROR(
          ReadSwaPattern(f, p + "attention.sliding_window_pattern", arch->swa_pattern, &c));
      GGSWARM_RETURN_IF_ERROR(Float(f, p + "rope.freq_base_swa", &c.rope_base_swa,
                                    arch->swa_base_default ? arch->swa_base_default : c.rope_base));
      if (!(c.rope_base_swa > 0))
        return Status::Corruption("rope.freq_base_swa is not a positive number");
      c.rope_freq_scale_swa = arch->swa_scaled ? c.rope_freq_scale : 1.0f;
    }
  }

  const gguf::TensorInfo* emb = f.FindTensor("token_embd.weight");
  if (!emb || emb->shape.size() < 2) return Status::NotFound("tensor token_embd.weight is missing");
  if (emb->shape[1] > static_cast<uint64_t>(kMaxDim * 4))
    return Status::Corruption("token_embd.weight has too many rows");
  c.n_vocab = static_cast<int>(emb->shape[1]);
  GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "token_embd.weight", c.n_embd, c.n_vocab));
  GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "output_norm.weight", c.n_embd, 0));
  c.tied_output = arch->head_is_embd || f.FindTensor("output.weight") == nullptr;
  GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "output.weight", c.n_embd, c.n_vocab, true));
  c.has_rope_freqs = f.FindTensor("rope_freqs.weight") != nullptr;
  GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "rope_freqs.weight", c.rope_dim / 2, 0, true));
  c.rope_factors = f.FindTensor("rope_factors_long.weight") != nullptr;
  if (c.rope_factors) {
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "rope_factors_long.weight", c.rope_dim / 2, 0));
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, "rope_factors_short.weight", c.rope_dim / 2, 0));
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_norm.weight", c.n_embd, 0));
    if (c.fused_qkv) {
      GGSWARM_RETURN_IF_ERROR(
          CheckTensor(f, b + "attn_qkv.weight", c.n_embd, c.q_dim() + c.kv_dim() + c.v_dim()));
    } else {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_q.weight", c.n_embd, c.q_dim()));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_k.weight", c.n_embd, c.kv_dim()));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_v.weight", c.n_embd, c.v_dim()));
    }
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_output.weight", c.q_dim(), c.n_embd));
    if (c.qkv_bias) {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_q.bias", c.q_dim(), 0));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_k.bias", c.kv_dim(), 0));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_v.bias", c.v_dim(), 0));
    }
    if (c.qk_norm) {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_q_norm.weight", c.head_dim, 0));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "attn_k_norm.weight", c.head_dim, 0));
    }
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_norm.weight", c.n_embd, 0));
    if (c.post_norms) {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "post_attention_norm.weight", c.n_embd, 0));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "post_ffw_norm.weight", c.n_embd, 0));
    }
    if (c.moe) {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_gate_inp.weight", c.n_embd, c.n_expert));
      GGSWARM_RETURN_IF_ERROR(
          CheckShape(f, b + "ffn_gate_exps.weight",
                     {uint64_t(c.n_embd), uint64_t(c.n_ff_exp), uint64_t(c.n_expert)}));
      GGSWARM_RETURN_IF_ERROR(
          CheckShape(f, b + "ffn_up_exps.weight",
                     {uint64_t(c.n_embd), uint64_t(c.n_ff_exp), uint64_t(c.n_expert)}));
      GGSWARM_RETURN_IF_ERROR(
          CheckShape(f, b + "ffn_down_exps.weight",
                     {uint64_t(c.n_ff_exp), uint64_t(c.n_embd), uint64_t(c.n_expert)}));
      continue;
    }
    if (c.fused_up) {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_up.weight", c.n_embd, 2 * c.n_ff));
    } else {
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_gate.weight", c.n_embd, c.n_ff));
      GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_up.weight", c.n_embd, c.n_ff));
    }
    GGSWARM_RETURN_IF_ERROR(CheckTensor(f, b + "ffn_down.weight", c.n_ff, c.n_embd));
  }
  return c;
}

}  // namespace ggswarm::model
