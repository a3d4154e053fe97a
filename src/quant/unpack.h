// Per-type facts of the arithmetic (one row per weight type, as ggml's type traits) and the
// one scalar decoder of every block format: a row as int8 quants with a scale (and a min) per
// sub-block. Dequantize and the kernels' tile decoders both build on UnpackRow, so a block
// layout is read in one place (quant/blocks.h gives the layouts).
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace ggswarm::quant {

struct QuantTraits {
  GgmlType type;
  GgmlType vec_dot_type;  // the activation format it multiplies with (ggml's vec_dot_type)
  int sub_block;          // elements per scale in UnpackRow; 0: a float type, not unpacked
  bool has_min;           // x = scale * q + min; otherwise x = scale * q
  bool integer_dot;       // VecDotBlocks works on its blocks directly (quant/vec_dot.h)
  // The largest |q| UnpackRow can give, whatever a file holds (the quants are bit fields,
  // Q8_0's and Q8_K's whole bytes: -128); 0 for the float types.
  int max_q;
};

// The row of a type ggswarm dequantizes (Traits(t).dequantizable), else nullptr.
const QuantTraits* FindQuantTraits(GgmlType t);

// Row `row` (k elements of a type with sub_block > 0; k a whole number of blocks) as int8
// quants q[k] (the type's offset applied: Q4_0's nibble - 8, Q6_K's q6 - 32, …) with a scale
// sw[b] and a min mw[b] per sub-block b of sub_block elements (mw = 0 without a min): element
// j is sw[j / sub_block] * q[j] (+ mw[j / sub_block]), computed in f32 exactly as Dequantize
// (and ggml) compute it.
void UnpackRow(GgmlType w, const uint8_t* row, int64_t k, int8_t* q, float* sw, float* mw);

}  // namespace ggswarm::quant
