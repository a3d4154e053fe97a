// AVX2 tiles: the prompt products of the types whose decoded quants are small (|q| <=
// kTileMaxQ = 32: every tile type but Q8_0), on CPUs without AVX-512 VNNI. The same decoded rows
// and panel as the VNNI tiles (kernels.h), a 256-bit register holding eight of a panel group's
// sixteen tokens; vpmaddubsw and vpmaddwd stand in for vpdpbusd. The panel's quants are unsigned (q
// + 128 <= 255) and the weights' |q| <= 32, so a pair of products, at most 2 · 255 · 32 = 16320,
// never saturates vpmaddubsw's 16 bits, and two (four where |q| <= 16) can be summed there before
// vpmaddwd widens them: the integer sums are exact, and the float steps are the VNNI tiles' own,
// lane for lane, so the results are their bits.
#include "kernels/avx2_target.h"
// (first: the target applies to everything below)

#include <algorithm>
#include <cstring>

#include "kernels/kernels_avx2.h"
#include "quant/unpack.h"

namespace ggswarm::kernels::avx2 {
namespace {

// Rows r0 … r0 + R - 1 against tokens 8 · eighth … 8 · eighth + 7 of the panel; F quads
// (2 or 4, dividing a block's) summed in 16 bits at a time; Q quads a block (8 for blocks of
// 32, 4 for 16), known when compiled so that the loop over them unrolls (it was faster so:
// docs/benchmarks.md).
template <int R, int F, int Q>
void TileEighths(const DecodedRows& w, const Panel& p, bool has_min, int r0, int eighth, float* out,
                 int64_t rs, int64_t ts) {
  const int64_t k = w.k, nkb = w.nkb;
  constexpr int quads = Q;
  const int g = eighth / 2, h = eighth % 2;
  // A panel group holds, per element quad, 64 bytes (sixteen tokens' four quants); this
  // register's eight tokens are the first or last 32 of them, and of each block's 16 scales.
  const uint8_t* panel = p.q.data() + static_cast<size_t>(g) * k * kPanelTokens + 32 * h;
  const float* sa = p.sa.data() + static_cast<size_t>(g) * nkb * kPanelTokens + 8 * h;
  const float* SA = p.SA.data() + static_cast<size_t>(g) * nkb * kPanelTokens + 8 * h;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) facc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nkb; ++b) {
    __m256i iacc[R];
    const int8_t* wq[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      iacc[r] = _mm256_set1_epi32(w.negc[(r0 + r) * nkb + b]);
      wq[r] = w.At(r0 + r, b);
    }
    const uint8_t* pq = panel + b * quads * 64;
#pragma GCC unroll 8
    for (int q = 0; q < quads; q += F) {
      // F quads' pairs summed in 16 bits, then widened once (F · 2 · 255 · max|q| fits).
      __m256i s16[R];
#pragma GCC unroll 4
      for (int f = 0; f < F; ++f) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pq + (q + f) * 64));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          int32_t wd;
          std::memcpy(&wd, wq[r] + (q + f) * 4, 4);
          const __m256i prod = _mm256_maddubs_epi16(av, _mm256_set1_epi32(wd));
          s16[r] = f ? _mm256_add_epi16(s16[r], prod) : prod;
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        iacc[r] = _mm256_add_epi32(iacc[r], _mm256_madd_epi16(s16[r], ones));
    }
    const __m256 sav = _mm256_loadu_ps(sa + b * kPanelTokens);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 s = _mm256_set1_ps(w.sw[(r0 + r) * nkb + b]);
      facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[r]), _mm256_mul_ps(sav, s), facc[r]);
    }
    if (has_min) {
      const __m256 m = _mm256_loadu_ps(SA + b * kPanelTokens);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        facc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(w.mw[(r0 + r) * nkb + b]), facc[r]);
    }
  }
  const int t0 = 8 * eighth;
  const int nt = std::min(8, p.n - t0);
  for (int r = 0; r < R; ++r) {
    alignas(32) float v[8];
    _mm256_store_ps(v, facc[r]);
    float* o = out + (r0 + r) * rs + t0 * ts;
    for (int t = 0; t < nt; ++t) o[t * ts] = v[t];
  }
}

template <int R, int F, int Q>
void TileRows(const DecodedRows& w, const Panel& p, bool has_min, int r0, float* out, int64_t rs,
              int64_t ts) {
  for (int e = 0; 8 * e < p.n; ++e) TileEighths<R, F, Q>(w, p, has_min, r0, e, out, rs, ts);
}

template <int F, int Q>
void TileAll(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs,
             int64_t ts) {
  int r = 0;
  for (; r + 4 <= w.rows; r += 4) TileRows<4, F, Q>(w, p, has_min, r, out, rs, ts);
  switch (w.rows - r) {
    case 3:
      return TileRows<3, F, Q>(w, p, has_min, r, out, rs, ts);
    case 2:
      return TileRows<2, F, Q>(w, p, has_min, r, out, rs, ts);
    case 1:
      return TileRows<1, F, Q>(w, p, has_min, r, out, rs, ts);
    default:
      return;
  }
}

}  // namespace

void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts) {
  // Pairs of products are at most 2 · 255 · max|q|: four of them fit in 16 bits where the
  // quants stay within ±16, two within ±kTileMaxQ.
  const bool four = quant::FindQuantTraits(w.type)->max_q <= 16;
  if (w.block == 32) {
    if (four) return TileAll<4, 8>(w, p, has_min, out, rs, ts);
    return TileAll<2, 8>(w, p, has_min, out, rs, ts);
  }
  if (four) return TileAll<4, 4>(w, p, has_min, out, rs, ts);
  TileAll<2, 4>(w, p, has_min, out, rs, ts);
}

}  // namespace ggswarm::kernels::avx2
