#include "convert/type_plan.h"

#include <cctype>

#include "gguf/tensor_name.h"

namespace ggswarm {
namespace {

struct MixRow {
  const char* name;
  GgmlType base;
  bool medium;
  int file_type;
};

// file_type values are llama.cpp's enum llama_ftype.
constexpr MixRow kMixes[] = {
    {"F32", GgmlType::F32, false, 0},     {"F16", GgmlType::F16, false, 1},
    {"BF16", GgmlType::BF16, false, 32},  {"Q4_0", GgmlType::Q4_0, false, 2},
    {"Q4_1", GgmlType::Q4_1, false, 3},   {"Q5_0", GgmlType::Q5_0, false, 8},
    {"Q5_1", GgmlType::Q5_1, false, 9},   {"Q8_0", GgmlType::Q8_0, false, 7},
    {"Q2_K", GgmlType::Q2_K, false, 10},  {"Q3_K", GgmlType::Q3_K, false, 11},
    {"Q3_K_M", GgmlType::Q3_K, true, 12}, {"Q4_K", GgmlType::Q4_K, false, 14},
    {"Q4_K_M", GgmlType::Q4_K, true, 15}, {"Q5_K", GgmlType::Q5_K, false, 16},
    {"Q5_K_M", GgmlType::Q5_K, true, 17}, {"Q6_K", GgmlType::Q6_K, false, 18},
    {"Q8_K", GgmlType::Q8_K, false, -1},
};

// A type whose blocks fit rows that `t` cannot hold, as llama-quantize falls back.
GgmlType Fallback(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
      return GgmlType::Q4_0;
    case GgmlType::Q4_K:
      return GgmlType::Q5_0;
    case GgmlType::Q5_K:
      return GgmlType::Q5_1;
    case GgmlType::Q6_K:
    case GgmlType::Q8_K:
      return GgmlType::Q8_0;
    default:
      return GgmlType::F16;
  }
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool UseMoreBits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

}  // namespace

std::optional<TypeMix> ParseTypeMix(std::string_view name) {
  std::string up;
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const MixRow& r : kMixes) {
    if (up == r.name) return TypeMix{r.name, r.base, r.medium, r.file_type};
  }
  return std::nullopt;
}

std::string TypeMixNames() {
  std::string s;
  for (const MixRow& r : kMixes) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

GgmlType PlanTensorType(const TypeMix& mix, const std::string& name, uint64_t ne0, size_t n_dims,
                        int n_layer, std::string* note) {
  if (n_dims < 2) return GgmlType::F32;                             // norms and biases stay F32
  if (EndsWith(name, "ffn_gate_inp.weight")) return GgmlType::F32;  // routers, as llama.cpp
  GgmlType want = mix.base;
  if (mix.medium) {
    const int layer = gguf::LayerOf(name);
    if (name == "output.weight") want = GgmlType::Q6_K;
    if ((EndsWith(name, ".attn_v.weight") || EndsWith(name, ".ffn_down.weight")) &&
        UseMoreBits(layer, n_layer)) {
      want = GgmlType::Q6_K;
    }
  }
  GgmlType t = want;
  while (ne0 % Traits(t).block_size != 0) t = Fallback(t);
  if (t != want && note) {
    *note = name + ": rows of " + std::to_string(ne0) + " do not fit " + TypeName(want) +
            " blocks of " + std::to_string(Traits(want).block_size) + "; using " + TypeName(t);
  }
  return t;
}

}  // namespace ggswarm
