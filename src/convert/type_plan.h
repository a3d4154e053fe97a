// Which type each tensor of a model gets when a model is made or quantized "as TYPE", in the
// manner of llama-quantize: 1-D tensors (norms) stay F32; the _M mixes give `output` and some
// layers' attn_v/ffn_down Q6_K; a tensor whose rows do not fit the type's blocks falls back
// to a type that fits.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gguf/ggml_type.h"

namespace ggswarm {

struct TypeMix {
  std::string name;     // "Q4_K_M", "Q8_0", …
  GgmlType base;        // type of most matrices
  bool medium = false;  // the _M mix
  int file_type = -1;   // llama.cpp's general.file_type (LLAMA_FTYPE_*), -1 when it has none
};

// Parses "Q8_0", "q4_k_m", "F16", …; nullopt for an unknown or unwritable name.
std::optional<TypeMix> ParseTypeMix(std::string_view name);
std::string TypeMixNames();

// The type of tensor `name` (rows of `ne0` elements, `n_dims` dimensions) in a model of
// `n_layer` layers. When the preferred type does not fit, `*note` says what was chosen.
GgmlType PlanTensorType(const TypeMix& mix, const std::string& name, uint64_t ne0, size_t n_dims,
                        int n_layer, std::string* note);

}  // namespace ggswarm
