// The AVX-512 VNNI kernels (kernels_avx512.cpp is compiled for that instruction set and
// called only when the CPU has it). See kernels.h.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"
#include "quant/blocks.h"

namespace ggswarm::kernels::avx512 {

void DotQ8_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ4_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ4_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ6_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
// RowDots for n tokens: each step of a row's blocks decoded once for up to eight tokens,
// every token's sums taken in the order DotQ* takes them (the same bits).
void DotsTokens(GgmlType w, const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts,
                int n, int64_t k, float* y, int64_t ts);
void QuantizeQ8_0(const float* x, blocks::Q8_0* y, int64_t nb);
void QuantizeQ8_K(const float* x, blocks::Q8_K* y, int64_t nb);
// QuantizeQ8_0's quants in q in the four-block kernels' layout (RowDotAct; plus 128 where
// `plus128`, as the Q8_0 kernel takes them), its scales (as stored, in f32) in d and, where
// corr is given, PrepareRowDot's Q4_0 correction. nb is a multiple of four.
void QuantizeQ8_0Split(const float* x, int64_t nb, int8_t* q, float* d, int32_t* corr,
                       bool plus128);
uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams);
void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap);
void AttendF32(const float* q, int heads, const float* kt, int64_t kt_stride, const float* v,
               int len, int head_dim, float scale, float* out, float softcap);
void SiluMul(const float* g, const float* u, float* out, int64_t n);
void GeluTableMul(const float* table, const float* g, const float* u, float* out, int64_t n);
void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts);

}  // namespace ggswarm::kernels::avx512
