// AMX tile kernel: sixteen decoded weight rows (tile A, 16 × block bytes) times sixteen
// tokens of the panel (tile B, block/4 rows of 64 bytes: the panel is already in the
// layout TDPBSSD wants), one block at a time into an int32 16 × 16 tile, which the vector
// unit scales and adds into sixteen float accumulators.
#pragma GCC target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/kernels_amx.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ggswarm::kernels::amx {
namespace {

constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Tiles: 0 = C (16 × 16 int32), 1 = A (16 rows × block bytes), 2 = B (block/4 rows × 64).
void Configure(int block) {
  thread_local int configured = 0;
  if (configured == block) return;
  TileConfig c;
  c.rows[0] = 16;
  c.colsb[0] = 64;
  c.rows[1] = 16;
  c.colsb[1] = static_cast<uint16_t>(block);
  c.rows[2] = static_cast<uint8_t>(block / 4);
  c.colsb[2] = 64;
  _tile_loadconfig(&c);
  configured = block;
}

}  // namespace

bool RequestTileState() {
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
}

void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts) {
  const int64_t k = w.k, nkb = w.nkb;
  const int block = static_cast<int>(k / nkb);
  Configure(block);
  alignas(64) int32_t c[16][16];
  alignas(64) float res[16][16];
  const int rows = w.rows;
  for (int g = 0; g < p.groups; ++g) {
    const uint8_t* panel = p.q.data() + static_cast<size_t>(g) * k * 16;
    const float* sa = p.sa.data() + static_cast<size_t>(g) * nkb * 16;
    const float* SA = p.SA.data() + static_cast<size_t>(g) * nkb * 16;
    __m512 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nkb; ++b) {
      _tile_zero(0);
      _tile_loadd(1, w.q.data() + b * block, k);
      _tile_loadd(2, panel + b * block * 16, 64);
      _tile_dpbssd(0, 1, 2);
      _tile_stored(0, c, 64);
      const __m512 sav = _mm512_loadu_ps(sa + b * 16);
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[r])),
                                 _mm512_mul_ps(sav, _mm512_set1_ps(w.sw[r * nkb + b])), acc[r]);
      if (has_min) {
        const __m512 m = _mm512_loadu_ps(SA + b * 16);
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r)
          acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(w.mw[r * nkb + b]), acc[r]);
      }
    }
    for (int r = 0; r < 16; ++r) _mm512_store_ps(res[r], acc[r]);
    const int nt = std::min(16, p.n - g * 16);
    for (int t = 0; t < nt; ++t) {
      float* o = out + (g * 16 + t) * ts;
      for (int r = 0; r < rows; ++r) o[r * rs] = res[r][t];
    }
  }
}

}  // namespace ggswarm::kernels::amx
