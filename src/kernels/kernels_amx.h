// The AMX tile kernel (kernels_amx.cpp is compiled for AMX-TILE/AMX-INT8 and AVX-512 and
// called only when the CPU has them and the kernel granted the tile state). See kernels.h.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace ggswarm::kernels::amx {

// Asks Linux for the tile data state (once per process); false where it is refused.
bool RequestTileState();

void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts);

}  // namespace ggswarm::kernels::amx
