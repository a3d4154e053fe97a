#include "convert/synth.h"

#include <cmath>
#include <cstring>
#include <map>

#include "base/fp16.h"
#include "gguf/gguf_writer.h"
#include "model/config.h"
#include "quant/blocks.h"
#include "tokenizer/unicode.h"

namespace ggswarm {
namespace {

using gguf::Value;
using gguf::ValueType;

struct PresetRow {
  const char* name;
  ModelShape shape;
  const char* arch = "llama";
  const char* vocab = "spm";
};

const PresetRow kPresets[] = {
    {"tinyllama-1.1b", {2048, 22, 32, 4, 5632, 32000, 0, 2048, 10000.0f, 1e-5f}},
    {"mistral-7b", {4096, 32, 32, 8, 14336, 32768, 0, 32768, 1000000.0f, 1e-5f}},
    // Mixtral 8x7B: Mistral 7B's attention, 8 experts of 14336 per layer, 2 used per token.
    {"mixtral-8x7b",
     {4096, 32, 32, 8, 14336, 32000, 0, 32768, 1000000.0f, 1e-5f, false, false, 8, 2}},
    // Mistral-Small / Magistral class: heads of 128, so q_dim (4096) ≠ n_embd (5120).
    {"mistral-small-24b", {5120, 40, 32, 8, 32768, 131072, 128, 32768, 1000000000.0f, 1e-5f}},
    // The families people run (config.json of each on Hugging Face).
    {"llama-3.2-1b",
     {2048, 16, 32, 8, 8192, 128256, 64, 131072, 500000.0f, 1e-5f, true, true},
     "llama",
     "llama3"},
    {"qwen2.5-0.5b",
     {896, 24, 14, 2, 4864, 151936, 64, 32768, 1000000.0f, 1e-6f, true},
     "qwen2",
     "qwen2"},
    {"qwen3-0.6b",
     {1024, 28, 16, 8, 3072, 151936, 128, 40960, 1000000.0f, 1e-6f, true},
     "qwen3",
     "qwen2"},
    {"qwen3-8b", {4096, 36, 32, 8, 12288, 151936, 128, 40960, 1000000.0f, 1e-6f}, "qwen3", "qwen2"},
    // Ministral 3 8B: YaRN ×16 from 16k, query temperature 0.1 (its config.json).
    {"ministral-3-8b",
     {4096, 34, 32, 8, 14336, 131072, 128, 262144, 1000000.0f, 1e-5f, false, false, 0, 0, 0, 16.0f,
      16384, 0.1f},
     "mistral3",
     "tekken"},
    // Phi-4-mini: partial rope (96 of 128), fused q/k/v and gate/up, tied head.
    {"phi-4-mini",
     {3072, 32, 24, 8, 8192, 200064, 128, 131072, 10000.0f, 1e-5f, true, false, 0, 0, 0, 0, 4096, 0,
      96},
     "phi3",
     "gpt-4o"},
    // Gemma 2 2B and Gemma 3 4B: heads of 256, tied heads, 256k vocabularies, sliding windows
    // (Gemma 3: 5 local layers to 1 global, the global rope stretched 8× linearly).
    {"gemma2-2b",
     {2304,  26, 8, 4, 9216, 256000, 256, 8192, 10000.0f, 1e-6f, true,
      false, 0,  0, 0, 0,    0,      0,   0,    0,        4096,  2},
     "gemma2",
     "gemma"},
    {"gemma3-4b",
     {2560,  34, 8, 4, 10240, 262144, 256, 131072, 1000000.0f, 1e-6f, true,
      false, 0,  0, 0, 0,     0,      0,   0,      8.0f,       1024,  6},
     "gemma3",
     "gemma"},
    {"qwen3-30b-a3b",
     {2048, 48, 32, 4, 6144, 151936, 128, 40960, 1000000.0f, 1e-6f, false, false, 128, 8, 768},
     "qwen3moe",
     "qwen2"},
    // Small shapes for tests: rows of 256 fit every block type.
    {"tiny", {256, 2, 4, 2, 512, 512, 0, 512, 10000.0f, 1e-5f}},
    {"micro", {64, 2, 4, 2, 160, 300, 0, 256, 10000.0f, 1e-5f}},
};

// splitmix64: a tiny, fast, well-mixed generator; one stream per tensor.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }  // [0,1)
  float Symmetric(float a) { return (2 * Uniform() - 1) * a; }
};

uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Fills `n` elements of `type` with random values of magnitude about `a`. Quantized blocks are
// random bytes with their scale fields set to sane values (no NaN, no infinities).
void FillRandom(GgmlType type, float a, uint64_t n, Rng& rng, uint8_t* out) {
  const TypeTraits& tr = Traits(type);
  if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) {
    for (uint64_t i = 0; i < n; ++i) {
      const float v = rng.Symmetric(a);
      if (type == GgmlType::F32) std::memcpy(out + 4 * i, &v, 4);
      const uint16_t h = type == GgmlType::F16 ? FloatToHalf(v) : FloatToBf16(v);
      if (type != GgmlType::F32) std::memcpy(out + 2 * i, &h, 2);
    }
    return;
  }
  const uint64_t bytes = n / tr.block_size * tr.type_size;
  uint64_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    const uint64_t r = rng.Next();
    std::memcpy(out + i, &r, 8);
  }
  for (; i < bytes; ++i) out[i] = static_cast<uint8_t>(rng.Next());
  auto half = [&](float v) { return FloatToHalf(v * (0.5f + rng.Uniform())); };
  for (uint8_t* b = out; b < out + bytes; b += tr.type_size) {
    using namespace blocks;
    switch (type) {
      case GgmlType::Q4_0:
        reinterpret_cast<Q4_0*>(b)->d = half(a / 8);
        break;
      case GgmlType::Q5_0:
        reinterpret_cast<Q5_0*>(b)->d = half(a / 16);
        break;
      case GgmlType::Q8_0:
        reinterpret_cast<Q8_0*>(b)->d = half(a / 127);
        break;
      case GgmlType::Q4_1: {
        auto* q = reinterpret_cast<Q4_1*>(b);
        q->d = half(a / 8);
        q->m = FloatToHalf(-a);
        break;
      }
      case GgmlType::Q5_1: {
        auto* q = reinterpret_cast<Q5_1*>(b);
        q->d = half(a / 16);
        q->m = FloatToHalf(-a);
        break;
      }
      case GgmlType::Q2_K: {
        auto* q = reinterpret_cast<Q2_K*>(b);
        q->d = half(a / 24);
        q->dmin = half(a / 16);
        break;
      }
      case GgmlType::Q3_K:
        reinterpret_cast<Q3_K*>(b)->d = half(a / 64);
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        auto* q = reinterpret_cast<Q4_K*>(b);  // d and dmin lead both layouts
        q->d = half(type == GgmlType::Q4_K ? a / 240 : a / 480);
        q->dmin = half(a / 32);
        break;
      }
      case GgmlType::Q6_K:
        reinterpret_cast<Q6_K*>(b)->d = half(a / 2048);
        break;
      case GgmlType::Q8_K: {
        auto* q = reinterpret_cast<Q8_K*>(b);
        q->d = a / 127 * (0.5f + rng.Uniform());
        for (int j = 0; j < kQK_K / 16; ++j) {
          int s = 0;
          for (int k = 0; k < 16; ++k) s += q->qs[16 * j + k];
          q->bsums[j] = static_cast<int16_t>(s);
        }
        break;
      }
      default:
        break;
    }
  }
}

// The generated vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then distinct pieces
// ("▁a", "a", "▁b", … "▁ab", …) with decreasing scores.
void AddVocabulary(uint32_t n_vocab, bool gemma, gguf::GgufWriter* w) {
  std::vector<std::string> tokens;
  std::vector<Value> scores, types;
  tokens.reserve(n_vocab);
  auto add = [&](std::string piece, float score, int32_t type) {
    tokens.push_back(std::move(piece));
    scores.push_back(Value::Float32(score));
    types.push_back(Value::Int32(type));
  };
  // token types are llama.cpp's: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
  if (gemma) {  // Gemma's first ids, and its turns
    for (const char* t : {"<pad>", "<eos>", "<bos>"}) add(t, 0, 3);
    add("<unk>", 0, 2);
    add("<start_of_turn>", 0, 4);
    add("<end_of_turn>", 0, 4);
  } else {
    add("<unk>", 0, 2);
    add("<s>", 0, 3);
    add("</s>", 0, 3);
  }
  for (int b = 0; b < 256 && tokens.size() < n_vocab; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0, 6);
  }
  for (uint64_t k = 0; tokens.size() < n_vocab; ++k) {
    std::string word;
    for (uint64_t n = k / 2 + 1; n > 0; n = (n - 1) / 26)
      word.insert(word.begin(), 'a' + (n - 1) % 26);
    add((k % 2 == 0 ? "\xE2\x96\x81" : "") + word, -static_cast<float>(k), 1);
  }
  tokens.resize(n_vocab);
  scores.resize(n_vocab);
  types.resize(n_vocab);
  w->Set("tokenizer.ggml.model", Value::String("llama"));
  w->Set("tokenizer.ggml.tokens", Value::StringArray(tokens));
  w->Set("tokenizer.ggml.scores", Value::Array(ValueType::FLOAT32, scores));
  w->Set("tokenizer.ggml.token_type", Value::Array(ValueType::INT32, types));
  w->Set("tokenizer.ggml.bos_token_id", Value::Uint32(gemma ? 2 : 1));
  w->Set("tokenizer.ggml.eos_token_id", Value::Uint32(gemma ? 1 : 2));
  w->Set("tokenizer.ggml.unknown_token_id", Value::Uint32(gemma ? 3 : 0));
  if (gemma) {
    w->Set("tokenizer.ggml.padding_token_id", Value::Uint32(0));
    w->Set("tokenizer.ggml.add_space_prefix", Value::Bool(false));
  }
  w->Set("tokenizer.ggml.add_bos_token", Value::Bool(true));
  w->Set("tokenizer.ggml.add_eos_token", Value::Bool(false));
}

// A byte-level BPE vocabulary: the 256 byte characters, merges learned (most frequent pair
// first, ties by text) from a fixed multilingual text, and three control tokens at the end.
void AddBpeVocabulary(uint32_t n_vocab, const std::string& pre, gguf::GgufWriter* w) {
  using tokenizer::ByteToUnicode;
  static const char* kText =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in "
      "the park with her friends. One day, they saw a big red ball and 3 dogs; it's 12345 "
      "steps away! Naïve café owners said: \"don't stop\". 東京タワーは高い。 The end.\n"
      // Cased words outside ASCII, and a combining mark: where the pre-tokenizers differ.
      "ΑΒΓαβγΔ ΠΡΙΝαβγ Привет ПРИВЕТмир e\u0301te\u0301 ΑΒΓαβγΔ ΠΡΙΝαβγ Привет ПРИВЕТмир "
      "e\u0301te\u0301 ΑΒΓαβγΔ ΠΡΙΝαβγ ПРИВЕТмир e\u0301te\u0301 I'M HERE, WE'LL see.\n";
  std::vector<std::vector<std::string>> words;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    std::vector<std::string> syms;
    for (char c : word) syms.push_back(ByteToUnicode(static_cast<uint8_t>(c)));
    words.push_back(std::move(syms));
    word.clear();
  };
  for (const char* c = kText; *c; ++c) {
    if (*c == ' ') flush();
    word += *c;
  }
  flush();
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
  std::vector<std::string> merges;
  while (tokens.size() + 3 < n_vocab) {
    std::map<std::pair<std::string, std::string>, int> count;
    for (const auto& ws : words)
      for (size_t i = 0; i + 1 < ws.size(); ++i) ++count[{ws[i], ws[i + 1]}];
    if (count.empty()) break;
    auto best = count.begin();
    for (auto it = count.begin(); it != count.end(); ++it)
      if (it->second > best->second) best = it;
    const auto [a, b] = best->first;
    merges.push_back(a + " " + b);
    tokens.push_back(a + b);
    for (auto& ws : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < ws.size(); ++i) {
        if (i + 1 < ws.size() && ws[i] == a && ws[i + 1] == b) {
          out.push_back(a + b);
          ++i;
        } else {
          out.push_back(ws[i]);
        }
      }
      ws = std::move(out);
    }
  }
  // Fill up with unused single-character-free tokens if the text ran out of pairs.
  for (int k = 0; tokens.size() + 3 < n_vocab; ++k)
    tokens.push_back("<|unused_" + std::to_string(k) + "|>");
  std::vector<Value> types(tokens.size(), Value::Int32(1));
  const uint32_t bos = static_cast<uint32_t>(tokens.size());
  for (const char* t : {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"}) {
    tokens.push_back(t);
    types.push_back(Value::Int32(3));
  }
  w->Set("tokenizer.ggml.model", Value::String("gpt2"));
  w->Set("tokenizer.ggml.pre", Value::String(pre));
  w->Set("tokenizer.ggml.tokens", Value::StringArray(tokens));
  w->Set("tokenizer.ggml.token_type", Value::Array(ValueType::INT32, types));
  w->Set("tokenizer.ggml.merges", Value::StringArray(merges));
  w->Set("tokenizer.ggml.bos_token_id", Value::Uint32(bos));
  w->Set("tokenizer.ggml.eos_token_id", Value::Uint32(bos + 1));
  w->Set("tokenizer.ggml.add_bos_token", Value::Bool(true));
}

}  // namespace

std::optional<ModelShape> FindPreset(const std::string& name) {
  for (const PresetRow& p : kPresets) {
    if (name == p.name) return p.shape;
  }
  return std::nullopt;
}

PresetKind PresetKindOf(const std::string& name) {
  for (const PresetRow& p : kPresets) {
    if (name == p.name) return {p.arch, p.vocab};
  }
  return {"llama", "spm"};
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> v;
  for (const PresetRow& p : kPresets) v.push_back(p.name);
  return v;
}

Status ValidateShape(const ModelShape& s) {
  if (!s.n_embd || !s.n_layer || !s.n_head || !s.n_head_kv || !s.n_ff || !s.n_vocab) {
    return Status::InvalidArgument("every dimension of the model must be at least 1");
  }
  if (s.n_vocab < 3) return Status::InvalidArgument("the vocabulary needs at least 3 tokens");
  if (s.n_head % s.n_head_kv != 0) {
    return Status::InvalidArgument("n_head " + std::to_string(s.n_head) +
                                   " is not a multiple of n_head_kv " +
                                   std::to_string(s.n_head_kv));
  }
  if (!s.head_dim && s.n_embd % s.n_head != 0) {
    return Status::InvalidArgument("n_embd " + std::to_string(s.n_embd) +
                                   " is not a multiple of n_head " + std::to_string(s.n_head));
  }
  const uint32_t hd = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
  if (hd % 2 != 0) return Status::InvalidArgument("the head size must be even (rotary pairs)");
  if (s.n_layer > 4096 || s.n_embd > 65536 || s.n_ff > 1 << 20 || s.n_vocab > 1 << 22) {
    return Status::InvalidArgument("model dimensions are out of range");
  }
  return Status::Ok();
}

// Llama 3.1's rope frequency factors (its conversion script): wavelengths below the
// original context / 4 kept, above it / 1 stretched 8×, smoothly in between.
static std::vector<float> Llama3RopeFactors(const ModelShape& s) {
  const uint32_t hd = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
  constexpr double kFactor = 8, kLow = 1, kHigh = 4, kOldContext = 8192;
  std::vector<float> f;
  for (uint32_t i = 0; i < hd; i += 2) {
    const double freq = 1.0 / std::pow(static_cast<double>(s.rope_freq_base), double(i) / hd);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < kOldContext / kHigh) {
      f.push_back(1.0f);
    } else if (wavelen > kOldContext / kLow) {
      f.push_back(static_cast<float>(kFactor));
    } else {
      const double smooth = (kOldContext / wavelen - kLow) / (kHigh - kLow);
      f.push_back(static_cast<float>(1 / ((1 - smooth) / kFactor + smooth)));
    }
  }
  return f;
}

StatusOr<SynthReport> Synthesize(const SynthOptions& o, const std::string& path, bool overwrite,
                                 const ProgressFn& progress) {
  GGSWARM_RETURN_IF_ERROR(ValidateShape(o.shape));
  const ModelShape& s = o.shape;
  const uint32_t hd = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
  const model::ArchTraits* arch = model::FindArch(o.arch);
  if (!arch)
    return Status::InvalidArgument("unknown architecture '" + o.arch + "' (" + model::ArchNames() +
                                   ")");
  const std::string p = o.arch + ".";
  gguf::GgufWriter w;
  w.Set("general.architecture", Value::String(o.arch));
  w.Set("general.name", Value::String(o.model_name));
  w.Set(p + "context_length", Value::Uint32(s.n_ctx));
  w.Set(p + "embedding_length", Value::Uint32(s.n_embd));
  w.Set(p + "block_count", Value::Uint32(s.n_layer));
  w.Set(p + "feed_forward_length", Value::Uint32(s.n_ff));
  const uint32_t rope_dim = s.rope_dim ? s.rope_dim : hd;
  if (rope_dim > hd || rope_dim % 2)
    return Status::InvalidArgument("the rope dimension must be even and at most the head size");
  w.Set(p + "rope.dimension_count", Value::Uint32(rope_dim));
  w.Set(p + "attention.head_count", Value::Uint32(s.n_head));
  w.Set(p + "attention.head_count_kv", Value::Uint32(s.n_head_kv));
  if (s.head_dim) {
    w.Set(p + "attention.key_length", Value::Uint32(s.head_dim));
    w.Set(p + "attention.value_length", Value::Uint32(s.head_dim));
  }
  w.Set(p + "attention.layer_norm_rms_epsilon", Value::Float32(s.rms_eps));
  w.Set(p + "rope.freq_base", Value::Float32(s.rope_freq_base));
  w.Set(p + "vocab_size", Value::Uint32(s.n_vocab));
  if (s.yarn_factor > 0 && s.linear_factor > 0)
    return Status::InvalidArgument(
        "a model has one rope scaling: YaRN (--yarn-factor) or linear (--rope-scale-linear)");
  if (s.yarn_factor > 0) {
    w.Set(p + "rope.scaling.type", Value::String("yarn"));
    w.Set(p + "rope.scaling.factor", Value::Float32(s.yarn_factor));
    w.Set(p + "rope.scaling.original_context_length",
          Value::Uint32(s.yarn_orig_ctx ? s.yarn_orig_ctx : s.n_ctx));
    w.Set(p + "rope.scaling.yarn_beta_fast", Value::Float32(32.0f));
    w.Set(p + "rope.scaling.yarn_beta_slow", Value::Float32(1.0f));
    w.Set(p + "rope.scaling.yarn_log_multiplier", Value::Float32(1.0f));
  }
  if (s.yarn_factor <= 0 && s.yarn_orig_ctx)
    w.Set(p + "rope.scaling.original_context_length", Value::Uint32(s.yarn_orig_ctx));
  if (s.linear_factor > 0) {
    w.Set(p + "rope.scaling.type", Value::String("linear"));
    w.Set(p + "rope.scaling.factor", Value::Float32(s.linear_factor));
  }
  if (s.n_swa) w.Set(p + "attention.sliding_window", Value::Uint32(s.n_swa));
  if (s.swa_pattern) w.Set(p + "attention.sliding_window_pattern", Value::Uint32(s.swa_pattern));
  if (arch->attn_softcap > 0) {  // as Gemma 2's files carry them
    w.Set(p + "attn_logit_softcapping", Value::Float32(arch->attn_softcap));
    w.Set(p + "final_logit_softcapping", Value::Float32(arch->final_softcap));
  }
  if (s.attn_temp_scale != 0)
    w.Set(p + "attention.temperature_scale", Value::Float32(s.attn_temp_scale));
  // Experts: always (qwen3moe), or when asked for (llama, Mixtral's: each of n_ff).
  const bool moe = arch->moe || (arch->moe_optional && s.n_expert > 0);
  const uint32_t n_ff_exp = arch->moe ? s.n_ff_exp : s.n_ff;
  if (moe) {
    if (!s.n_expert || !s.n_expert_used || !n_ff_exp || s.n_expert_used > s.n_expert)
      return Status::InvalidArgument(
          o.arch + (arch->moe
                        ? " needs --n-expert, --n-expert-used (at most n-expert) and --n-ff-exp"
                        : " with experts needs --n-expert-used (at most n-expert)"));
    w.Set(p + "expert_count", Value::Uint32(s.n_expert));
    w.Set(p + "expert_used_count", Value::Uint32(s.n_expert_used));
    if (arch->moe) w.Set(p + "expert_feed_forward_length", Value::Uint32(n_ff_exp));
  }
  if (o.mix.file_type >= 0) w.Set("general.file_type", Value::Uint32(o.mix.file_type));
  w.Set("general.quantization_version", Value::Uint32(2));
  if (o.vocab == "spm" || o.vocab == "gemma") {
    AddVocabulary(s.n_vocab, o.vocab == "gemma", &w);
  } else if (o.vocab == "llama3" || o.vocab == "qwen2" || o.vocab == "tekken" ||
             o.vocab == "gpt-2" || o.vocab == "gpt-4o") {
    if (s.n_vocab < 300) return Status::InvalidArgument("a BPE vocabulary needs n_vocab >= 300");
    AddBpeVocabulary(s.n_vocab, o.vocab, &w);
  } else {
    return Status::InvalidArgument("unknown vocabulary '" + o.vocab +
                                   "' (spm, gemma, llama3, qwen2, tekken, gpt-2, gpt-4o)");
  }

  SynthReport report;
  struct Planned {
    std::vector<uint64_t> shape;
    float magnitude;  // half-width of the value range
    bool norm;
    std::vector<float> values = {};  // given values (F32) instead of random ones
  };
  std::vector<std::pair<std::string, Planned>> plan;
  const float a = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
  plan.push_back({"token_embd.weight", {{s.n_embd, s.n_vocab}, a, false}});
  for (uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";  // (shadows the key prefix)
    plan.push_back({p + "attn_norm.weight", {{s.n_embd}, 0.1f, true}});
    if (arch->phi3) {  // q, k, v in one matrix
      plan.push_back({p + "attn_qkv.weight", {{s.n_embd, s.q_dim() + 2 * s.kv_dim()}, a, false}});
    } else {
      plan.push_back({p + "attn_q.weight", {{s.n_embd, s.q_dim()}, a, false}});
      plan.push_back({p + "attn_k.weight", {{s.n_embd, s.kv_dim()}, a, false}});
      plan.push_back({p + "attn_v.weight", {{s.n_embd, s.kv_dim()}, a, false}});
    }
    plan.push_back({p + "attn_output.weight", {{s.q_dim(), s.n_embd}, a, false}});
    if (arch->qkv_bias) {
      plan.push_back({p + "attn_q.bias", {{s.q_dim()}, a, false}});
      plan.push_back({p + "attn_k.bias", {{s.kv_dim()}, a, false}});
      plan.push_back({p + "attn_v.bias", {{s.kv_dim()}, a, false}});
    }
    if (arch->qk_norm) {
      plan.push_back({p + "attn_q_norm.weight", {{hd}, 0.1f, true}});
      plan.push_back({p + "attn_k_norm.weight", {{hd}, 0.1f, true}});
    }
    plan.push_back({p + "ffn_norm.weight", {{s.n_embd}, 0.1f, true}});
    if (arch->post_norms) {
      plan.push_back({p + "post_attention_norm.weight", {{s.n_embd}, 0.1f, true}});
      plan.push_back({p + "post_ffw_norm.weight", {{s.n_embd}, 0.1f, true}});
    }
    if (moe) {
      plan.push_back({p + "ffn_gate_inp.weight", {{s.n_embd, s.n_expert}, a, false}});
      plan.push_back({p + "ffn_gate_exps.weight", {{s.n_embd, n_ff_exp, s.n_expert}, a, false}});
      plan.push_back({p + "ffn_up_exps.weight", {{s.n_embd, n_ff_exp, s.n_expert}, a, false}});
      plan.push_back({p + "ffn_down_exps.weight", {{n_ff_exp, s.n_embd, s.n_expert}, a, false}});
      continue;
    }
    if (arch->phi3) {  // gate's rows, then up's, in one matrix
      plan.push_back({p + "ffn_up.weight", {{s.n_embd, 2 * s.n_ff}, a, false}});
    } else {
      plan.push_back({p + "ffn_gate.weight", {{s.n_embd, s.n_ff}, a, false}});
      plan.push_back({p + "ffn_up.weight", {{s.n_embd, s.n_ff}, a, false}});
    }
    plan.push_back({p + "ffn_down.weight", {{s.n_ff, s.n_embd}, a, false}});
  }
  plan.push_back({"output_norm.weight", {{s.n_embd}, 0.1f, true}});
  if (!s.tied_output && !arch->head_is_embd)
    plan.push_back({"output.weight", {{s.n_embd, s.n_vocab}, a, false}});
  if (arch->phi3) {  // long and short rope factors, as Phi-3's (from 1 up to 2.5 / 1.1)
    std::vector<float> lf(rope_dim / 2), sf(rope_dim / 2);
    for (uint32_t i = 0; i < rope_dim / 2; ++i) {
      lf[i] = 1.0f + 1.5f * i / std::max<uint32_t>(1, rope_dim / 2 - 1);
      sf[i] = 1.0f + 0.1f * i / std::max<uint32_t>(1, rope_dim / 2 - 1);
    }
    plan.push_back({"rope_factors_long.weight", {{rope_dim / 2}, 0, false, lf}});
    plan.push_back({"rope_factors_short.weight", {{rope_dim / 2}, 0, false, sf}});
  }
  if (s.llama3_rope)
    plan.push_back({"rope_freqs.weight", {{hd / 2}, 0, false, Llama3RopeFactors(s)}});
  for (auto& [name, p] : plan) {
    std::string note;
    const GgmlType t =
        PlanTensorType(o.mix, name, p.shape[0], p.shape.size(), static_cast<int>(s.n_layer), &note);
    if (!note.empty()) report.notes.push_back(note);
    w.AddTensor(name, t, p.shape);
  }

  const uint64_t total = w.FileSize();
  std::vector<uint8_t> buf;
  Status st = w.Write(path, overwrite, [&](size_t i, OutputFile& out) -> Status {
    const gguf::TensorInfo& t = w.tensors()[i];
    const Planned& p = plan[i].second;
    Rng rng{o.seed * 0x9e3779b97f4a7c15ULL ^ HashName(t.name)};
    const uint64_t row_bytes = t.size / t.rows();
    const uint64_t rows_per_chunk = std::max<uint64_t>(1, kIoChunk / row_bytes);
    for (uint64_t r = 0; r < t.rows(); r += rows_per_chunk) {
      const uint64_t nr = std::min(rows_per_chunk, t.rows() - r);
      buf.resize(nr * row_bytes);
      if (!p.values.empty()) {
        std::memcpy(buf.data(), p.values.data() + r, nr * row_bytes);
      } else if (p.norm) {
        for (uint64_t k = 0; k < nr * t.shape[0]; ++k) {
          const float v = 1.0f + rng.Symmetric(p.magnitude);
          std::memcpy(buf.data() + 4 * k, &v, 4);
        }
      } else {
        FillRandom(t.type, p.magnitude, nr * t.shape[0], rng, buf.data());
      }
      GGSWARM_RETURN_IF_ERROR(out.Write(buf));
      if (progress) progress(out.written(), total);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  report.file_size = total;
  for (const auto& t : w.tensors()) report.n_params += t.n_elements;
  return report;
}

}  // namespace ggswarm
