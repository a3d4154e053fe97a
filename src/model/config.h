// Hyper-parameters of a Llama-family model, read from GGUF metadata (`llama.*` keys), and
// the check that every tensor the forward pass needs is there with the shape they imply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm::model {

// Positions of a KV cache when the user names none: the model's trained context, at most
// this (a 128k-token model would otherwise take gigabytes of cache by default).
constexpr int kDefaultContext = 4096;
// More positions than this is a typo, not a model.
constexpr int kMaxContext = 1 << 20;

// The context a cache gets: `asked` when given (> 0), else the default for the model.
inline int ContextFor(int asked, int n_ctx_train) {
  return asked > 0 ? asked : (n_ctx_train < kDefaultContext ? n_ctx_train : kDefaultContext);
}

// How rotary embedding pairs a head's dimensions: (2i, 2i + 1), as Llama; or (i, i + n/2),
// as GPT-NeoX and the models that follow it (Qwen).
enum class RopeStyle { kNormal, kNeox };

// What sets an architecture of the Llama family apart from `llama`: one row per architecture
// (its GGUF name is the metadata keys' prefix), read by the forward pass instead of a copy of
// the forward pass per family.
struct ArchTraits {
  const char* name = nullptr;
  RopeStyle rope = RopeStyle::kNormal;
  bool qkv_bias = false;  // attn_q.bias, attn_k.bias, attn_v.bias are added to q, k, v (Qwen2)
  // attn_q_norm, attn_k_norm: each head of q and k RMS-normed before rope (Qwen3)
  bool qk_norm = false;
  bool moe = false;   // mixture of experts in every layer: a router (ffn_gate_inp) picks
                      // expert_used_count of expert_count SiLU-gated experts (ffn_*_exps), their
                      // weights the softmax over all experts renormalised over the chosen
  bool phi3 = false;  // q, k, v in one attn_qkv and gate, up in one ffn_up (their rows in turn);
                      // rope_factors_long/short
  // Experts when the file has expert_count > 0, each of feed_forward_length, routed as moe's
  // (Mixtral and Mistral's MoE conversions: llama, mistral3)
  bool moe_optional = false;
  // Gemma's differences, each its own field:
  bool gelu = false;          // the feed-forward's gate through GELU (tanh) instead of SiLU
  bool scale_embd = false;    // embeddings multiplied by sqrt(n_embd)
  bool head_is_embd = false;  // the output head is token_embd, output.weight or not (Gemma 2)
  bool post_norms = false;    // attention's and feed-forward's outputs RMS-normed
                              // (post_attention_norm, post_ffw_norm) before the residual sums
  // q_scale: q scaled after rope by 1/sqrt(head_dim) (attention's own scale then 1; Phi-3,
  // Gemma), or by 1/sqrt(n_embd / n_head) for the model of wide_q_scale_layers layers
  // (Gemma's 27B).
  bool q_scale = false;
  int wide_q_scale_layers = 0;
  // Soft-capping when the keys are absent: attention scores, final logits (cap · tanh(x/cap)).
  float attn_softcap = 0, final_softcap = 0;
  // Sliding-window attention (local layers): every `swa_pattern`th layer global, the others
  // local (the pattern's default when attention.sliding_window_pattern is absent); with
  // `swa_always`, on without attention.sliding_window too (its default: 4096). Local layers
  // take rope.freq_base_swa, by default the global base (`swa_base_default` 0) or this one,
  // unscaled unless `swa_scaled`.
  int swa_pattern = 0;
  bool swa_always = false;
  float swa_base_default = 0;
  bool swa_scaled = false;
};
// The row of architecture `name`, or nullptr when ggswarm does not run it.
const ArchTraits* FindArch(const std::string& name);
// The architectures ggswarm runs, for messages: "llama, mistral, qwen2, …".
std::string ArchNames();

struct LlamaConfig {
  std::string arch;  // general.architecture
  int n_vocab = 0;   // rows of token_embd
  int n_embd = 0;    // hidden size
  int n_layer = 0;
  int n_head = 0;       // query heads
  int n_head_kv = 0;    // key/value heads (grouped-query attention: n_head % n_head_kv == 0)
  int head_dim = 0;     // attention.key_length, default n_embd / n_head
  int head_dim_v = 0;   // attention.value_length, default head_dim
  int n_ff = 0;         // feed-forward size
  int n_ctx_train = 0;  // context_length
  int rope_dim = 0;     // rope.dimension_count, default head_dim
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = false;     // no output.weight: the head reuses token_embd
  bool has_rope_freqs = false;  // Llama 3 rope_freqs.weight
  RopeStyle rope_style = RopeStyle::kNormal;
  // rope.scaling.*: none, linear (freq_scale = 1 / factor) or yarn (also ext_factor 1, the
  // correction dimensions and the magnitude factor, as llama.cpp's context sets them).
  float rope_freq_scale = 1.0f;
  float yarn_ext_factor = 0.0f;
  float yarn_attn_factor = 1.0f;
  float yarn_corr_dims[2] = {0, 0};
  // attention.temperature_scale (Mistral 3, Llama 4): q after rope is multiplied by
  // 1 + scale · ln(floor(pos / floor_scale) + 1), floor_scale the YaRN original context.
  float attn_temp_scale = 0.0f;
  int attn_temp_floor = 0;
  bool qkv_bias = false;  // see ArchTraits
  bool qk_norm = false;
  bool moe = false;
  bool fused_qkv = false;     // attn_qkv.weight: q, k, v rows in one matrix
  bool fused_up = false;      // ffn_up.weight holds gate's rows, then up's (no ffn_gate)
  float q_scale = 0;          // > 0: q *= q_scale after rope, and attention's scale is 1
  bool rope_factors = false;  // rope_factors_long/short.weight, chosen by the context
  int n_ctx_orig = 0;         // rope.scaling.original_context_length (default: context_length)
  int n_expert = 0, n_expert_used = 0;  // expert_count, expert_used_count (moe)
  int n_ff_exp = 0;                     // expert_feed_forward_length (moe)
  bool gelu = false, scale_embd = false, post_norms = false;  // see ArchTraits
  float attn_softcap = 0, final_softcap = 0;  // attn/final_logit_softcapping; 0: none
  // Sliding-window attention: swa_layer[l] for a local layer, which sees the n_swa last
  // positions only (a key at p is masked for a query at p + n_swa and later), with its own
  // rope base and scale.
  int n_swa = 0;
  std::vector<uint8_t> swa_layer;
  float rope_base_swa = 10000.0f, rope_freq_scale_swa = 1.0f;
  bool IsLocal(int l) const { return n_swa > 0 && swa_layer[l]; }

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
  int v_dim() const { return n_head_kv * head_dim_v; }

  // Reads the hyper-parameters and checks every tensor's presence, shape and type.
  static StatusOr<LlamaConfig> FromGguf(const gguf::GgufFile& f);
};

}  // namespace ggswarm::model
