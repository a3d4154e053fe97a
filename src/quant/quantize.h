// Quantization from f32: a scalar reference quantizer for each type ggswarm writes. These are
// simple round-to-nearest quantizers (llama.cpp's K-quant search is finer); what they write
// is a valid block that every reader, llama.cpp included, dequantizes the same way.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "gguf/ggml_type.h"

namespace ggswarm {

// Quantizes `n` floats (a multiple of the type's block size) into RowBytes(type, n) bytes.
Status Quantize(GgmlType type, const float* src, void* dst, uint64_t n);

}  // namespace ggswarm
