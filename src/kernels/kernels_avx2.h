// The AVX2 kernels, for CPUs without AVX-512 VNNI (rowdot_avx2.cpp is compiled for AVX2,
// FMA and F16C and called only when the CPU has them). See kernels.h.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace ggswarm::kernels::avx2 {

// Row dots on the activation blocks as QuantizeRow makes them (act.act): no prepared
// layout.
void DotQ8_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ4_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ4_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
void DotQ6_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys);
// RowDots for n tokens (acts[0 … n-1]): y[t * ts + i] = row_i · acts[t]. Q8_0, Q4_0, Q4_K
// and Q6_K.
void DotsTokens(GgmlType w, const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts,
                int n, int64_t k, float* y, int64_t ts);
uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams);
// tile_avx2.cpp: TileProduct on a panel with the +128 offset, for the types whose decoded
// quants stay within ±kTileMaxQ (QuantTraits::max_q: every tile type but Q8_0), so that a
// vpmaddubsw pair, at most 2 · 255 · kTileMaxQ, fits in 16 bits.
constexpr int kTileMaxQ = 32;
void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts);
// attention_avx2.cpp
void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap);

}  // namespace ggswarm::kernels::avx2
