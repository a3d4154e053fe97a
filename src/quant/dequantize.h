// Dequantization to f32: the scalar reference for every type ggswarm reads. Results are
// bit-exact with ggml's dequantize_row_* (same operations in the same order, no fused
// multiply-add: this file is compiled with -ffp-contract=off).
#pragma once

#include <cstdint>
#include <span>

#include "base/status.h"
#include "gguf/ggml_type.h"

namespace ggswarm {

// Ok when `n` elements are a whole number of the type's blocks.
Status CheckWholeBlocks(GgmlType type, uint64_t n);

// Dequantizes `n` elements (a multiple of the type's block size) from `src` into `dst`.
// `src` must hold RowBytes(type, n) bytes.
Status Dequantize(GgmlType type, const void* src, float* dst, uint64_t n);

}  // namespace ggswarm
