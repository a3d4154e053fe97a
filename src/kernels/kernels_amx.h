// The AMX tile kernel (kernels_amx.cpp is compiled for AMX-TILE/AMX-INT8 and AVX-512 and
// called only when the CPU has them and the kernel granted the tile state). See kernels.h.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace ggswarm::kernels::amx {

// Asks Linux for the tile data state (once per process); false where it is refused.
bool RequestTileState();

void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts);

// The bf16 tiles (see kernels.h). One tile of sixteen weight rows, count of them given
// (the rest zero), into dst (its element block kb at dst + kb * step): from int8 quants
// (row i at q + i * k, element j of block b being sw[i * nkb + b] * q[j] + mw[…]), or
// straight from Q8_0 rows.
void QuantsTileToBf16(const int8_t* q, const float* sw, const float* mw, int count, int bl,
                      int64_t k, uint16_t* dst, int64_t step);
void Q8_0TileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step);
void Q4_KTileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step);
void Q6_KTileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step);
// n floats rounded to bf16 (n % 32 == 0).
void FloatsToBf16(const float* x, int64_t n, uint16_t* out);
void TileBf16(const Bf16Rows& w, const Bf16Tokens& x, float* out, int64_t out_stride);

}  // namespace ggswarm::kernels::amx
