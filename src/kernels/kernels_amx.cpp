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

// Tiles: 0, 1 = C (16 × 16 int32), 2, 3 = A (16 rows × block bytes), 4, 5 = B (block/4
// rows × 64 bytes): two blocks in flight, so that one block's products are scaled while
// the matrix unit works on the next.
void Configure(int block) {
  thread_local int configured = 0;
  if (configured == block) return;
  TileConfig c;
  for (int t = 0; t < 2; ++t) {
    c.rows[t] = 16;
    c.colsb[t] = 64;
    c.rows[2 + t] = 16;
    c.colsb[2 + t] = static_cast<uint16_t>(block);
    c.rows[4 + t] = static_cast<uint8_t>(block / 4);
    c.colsb[4 + t] = 64;
  }
  _tile_loadconfig(&c);
  configured = block;
}

// acc[r] += C[r] · (sa × sw[r]) (+ SA × mw[r]) for one block's products C.
inline void Accumulate(const int32_t (*c)[16], const __m512 sav, const float* sw, const float* mw,
                       int64_t nkb, int64_t b, const float* SA, bool has_min, __m512* acc) {
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r)
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[r])),
                             _mm512_mul_ps(sav, _mm512_set1_ps(sw[r * nkb + b])), acc[r]);
  if (has_min) {
    const __m512 m = _mm512_loadu_ps(SA + b * 16);
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r)
      acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(mw[r * nkb + b]), acc[r]);
  }
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
  alignas(64) int32_t c[2][16][16];
  alignas(64) float res[16][16];
  const int rows = w.rows;
  for (int g = 0; g < p.groups; ++g) {
    const uint8_t* panel = p.q.data() + static_cast<size_t>(g) * k * 16;
    const float* sa = p.sa.data() + static_cast<size_t>(g) * nkb * 16;
    const float* SA = p.SA.data() + static_cast<size_t>(g) * nkb * 16;
    __m512 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    const float* sw = w.sw.data();
    const float* mw = w.mw.data();
    const int64_t a_step = 16 * block, b_step = block * 16;
    // Block b's products are stored while block b - 1's (stored one step earlier, so the
    // vector loads do not wait on the tile store) are scaled and added.
    for (int64_t b = 0; b <= nkb; ++b) {
      if (b < nkb) {
        if (b & 1) {
          _tile_zero(1);
          _tile_loadd(3, w.q.data() + b * a_step, block);
          _tile_loadd(5, panel + b * b_step, 64);
          _tile_dpbssd(1, 3, 5);
          _tile_stored(1, c[1], 64);
        } else {
          _tile_zero(0);
          _tile_loadd(2, w.q.data() + b * a_step, block);
          _tile_loadd(4, panel + b * b_step, 64);
          _tile_dpbssd(0, 2, 4);
          _tile_stored(0, c[0], 64);
        }
      }
      if (b > 0)
        Accumulate(c[(b - 1) & 1], _mm512_loadu_ps(sa + (b - 1) * 16), sw, mw, nkb, b - 1, SA,
                   has_min, acc);
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
