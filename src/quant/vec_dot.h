// Dot products of a weight row with an activation row, the way ggml computes them: the
// activation is first converted to the weight type's companion format (ggml's
// vec_dot_type: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16
// for F16, BF16 for BF16), so that the same rounding happens as in llama.cpp.
//
// This file is the scalar reference. Integer formats are multiplied in integers per block
// (exact) and scaled in f32 as ggml's generic code does; the K-quants and float formats
// are dequantized and multiplied in f32.
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace ggswarm {

// Q8_1: 36 bytes: x = q * d; s = d * sum(q) (both halves). Only an activation format.
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

// The activation format that weights of type `w` multiply with.
GgmlType VecDotType(GgmlType w);

// Bytes of `n` activations in format `vt`.
uint64_t ActivationBytes(GgmlType vt, int64_t n);

// Converts `n` floats (a whole number of `vt` blocks) into format `vt`, rounding as ggml's
// x86 code does (round half to even).
void QuantizeActivation(GgmlType vt, const float* x, void* out, int64_t n);

// Expands an activation row in format `vt` back to floats (the values the dot sees).
void ExpandActivation(GgmlType vt, const void* a, float* out, int64_t n);

// True when VecDotBlocks works on the blocks directly (no dequantized weight row needed).
bool HasIntegerDot(GgmlType w);

// One weight row (type `w`, `n` elements) · one activation row in VecDotType(w).
// Only for types with HasIntegerDot.
float VecDotBlocks(GgmlType w, const void* wrow, const void* arow, int64_t n);

// f32 dot product (the float path: dequantized weights · expanded activations).
float DotF32(const float* a, const float* b, int64_t n);

}  // namespace ggswarm
