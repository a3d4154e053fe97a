// ggml tensor types as stored in GGUF files: ids, block sizes and bytes per block.
// Ids are llama.cpp's `enum ggml_type` (ids 4 and 5 were removed upstream and stay unused).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ggswarm {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

constexpr int kQK = 32;     // elements per block of the legacy quants (Q4_0 … Q8_1)
constexpr int kQK_K = 256;  // elements per super-block of the K-quants

struct TypeTraits {
  GgmlType type;
  const char* name;
  uint32_t block_size;  // elements per block
  uint32_t type_size;   // bytes per block
  bool dequantizable;   // ggswarm can turn it into f32
  bool quantizable;     // ggswarm can make it from f32
};

// Traits of a known type id; nullopt for ids ggswarm does not know the layout of.
const TypeTraits* FindType(uint32_t id);
const TypeTraits& Traits(GgmlType t);
// The name of a type id that ggml defines but ggswarm does not know the layout of
// ("IQ2_XXS" for 16); nullptr for ids ggml does not define either.
const char* UnsupportedTypeName(uint32_t id);
std::optional<GgmlType> TypeFromName(std::string_view name);  // case-insensitive "q4_k"
const char* TypeName(GgmlType t);

// Bytes of a row of `n` elements; n must be a multiple of the block size.
inline uint64_t RowBytes(GgmlType t, uint64_t n) {
  const TypeTraits& tr = Traits(t);
  return n / tr.block_size * tr.type_size;
}

}  // namespace ggswarm
