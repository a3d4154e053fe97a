// Deterministic random Llama-architecture models: any shape, any type mix, with a generated
// SentencePiece-style vocabulary. The same options always give the same bytes; tensors are
// generated and written a few MiB at a time, so a 14 GB model needs little memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "convert/type_plan.h"

namespace ggswarm {

struct ModelShape {
  uint32_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0;
  uint32_t head_dim = 0;  // 0: n_embd / n_head; set it to write attention.key/value_length
  uint32_t n_ctx = 2048;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = false;  // no output.weight: the head reuses token_embd (small models)
  bool llama3_rope = false;  // rope_freqs.weight with Llama 3.1's frequency factors
  uint32_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;  // moe architectures
  float yarn_factor = 0;       // > 0: YaRN rope scaling of this factor (Mistral 3) …
  uint32_t yarn_orig_ctx = 0;  // … from this original context (also Phi-3's, for its factors)
  float attn_temp_scale = 0;   // attention.temperature_scale (Mistral 3: 0.1)
  uint32_t rope_dim = 0;       // 0: the head size; less: partial rope (Phi-4-mini: 3/4)
  float linear_factor = 0;     // > 0: linear rope scaling of this factor (Gemma 3 4B: 8)
  uint32_t n_swa = 0;          // attention.sliding_window (Gemma: the local layers' window)
  uint32_t swa_pattern = 0;    // attention.sliding_window_pattern: every nth layer global
  uint32_t q_dim() const { return n_head * (head_dim ? head_dim : n_embd / n_head); }
  uint32_t kv_dim() const { return n_head_kv * (head_dim ? head_dim : n_embd / n_head); }
};

// Named shapes: tinyllama-1.1b, mistral-7b, mixtral-8x7b, mistral-small-24b, llama-3.2-1b,
// qwen2.5-0.5b, qwen3-0.6b, qwen3-8b, qwen3-30b-a3b, ministral-3-8b, phi-4-mini, gemma2-2b,
// gemma3-4b, and small ones for tests.
std::optional<ModelShape> FindPreset(const std::string& name);
// The architecture and vocabulary a preset's real model has ("llama"/"spm" for the rest).
struct PresetKind {
  std::string arch, vocab;
};
PresetKind PresetKindOf(const std::string& name);
std::vector<std::string> PresetNames();
// Checks a shape for consistency (heads divide the embedding, head size even, sizes ≥ 1).
Status ValidateShape(const ModelShape& s);

struct SynthOptions {
  ModelShape shape;
  TypeMix mix;
  uint64_t seed = 1;
  std::string model_name = "ggswarm-synth";
  // "spm": a SentencePiece-style vocabulary ("gemma": the same with Gemma's special tokens
  // and no space prefix); or a byte-level BPE vocabulary ("gpt2" model)
  // with merges learned from a fixed text and this pre-tokenizer: llama3, qwen2, tekken, gpt-2,
  // gpt-4o.
  std::string vocab = "spm";
  // The architecture (model/config.h's table): llama, or qwen2 (q/k/v biases, NeoX rope),
  // qwen3 (per-head q/k norms, NeoX rope), …; its name prefixes the hyper-parameters' keys.
  std::string arch = "llama";
};

struct SynthReport {
  uint64_t file_size = 0;
  uint64_t n_params = 0;
  std::vector<std::string> notes;  // type fallbacks
};

StatusOr<SynthReport> Synthesize(const SynthOptions& opts, const std::string& path, bool overwrite,
                                 const ProgressFn& progress = {});

}  // namespace ggswarm
