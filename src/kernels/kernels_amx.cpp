// AMX tile kernels.
//  - int8: sixteen decoded weight rows (tile A, 16 × block bytes) times sixteen tokens of
//    the panel (tile B, block/4 rows of 64 bytes: the panel is already in the layout
//    TDPBSSD wants), one block at a time into an int32 16 × 16 tile, which the vector unit
//    scales and adds into sixteen float accumulators.
//  - bf16 (long prompts): 32 tokens × 32 weight rows at a time in four f32 tiles that
//    TDPBF16PS accumulates over a slice of k; see kernels.h.
// clang-format off
#pragma GCC target("amx-tile,amx-int8,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
// clang-format on
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "kernels/kernels_amx.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "quant/blocks.h"

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
thread_local int g_configured = 0;  // the block of the int8 layout, or kBf16Layout

void Configure(int block) {
  if (g_configured == block) return;
  TileConfig c;
  for (int t = 0; t < 2; ++t) {
    c.rows[t] = kTileRows;
    c.colsb[t] = 64;
    c.rows[2 + t] = kTileRows;
    c.colsb[2 + t] = static_cast<uint16_t>(block);
    c.rows[4 + t] = static_cast<uint8_t>(block / 4);
    c.colsb[4 + t] = 64;
  }
  _tile_loadconfig(&c);
  g_configured = block;
}

// The bf16 layout: all eight tiles 16 rows × 64 bytes (C: 16 × 16 f32; A: 16 rows × 32
// bf16; B: 16 pairs × 16 tokens × 2 bf16).
constexpr int kBf16Layout = 2;
void ConfigureBf16() {
  if (g_configured == kBf16Layout) return;
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = 16;
    c.colsb[t] = 64;
  }
  _tile_loadconfig(&c);
  g_configured = kBf16Layout;
}

// Element blocks (of 32) per pass over the tokens: the passes' slices of the tokens (n × 1
// KiB) and of the weights (rows × 1 KiB) stay in the L2 cache.
constexpr int64_t kBf16Chunk = 64;

// Results for tokens g, g + 1 (A tiles 4, 5) × row tiles rt, rt + 1 (B tiles 6, 7) over
// element blocks kb0 … kb1, into C tiles 0 = (g, rt), 1 = (g, rt + 1), 2 = (g + 1, rt),
// 3 = (g + 1, rt + 1), which start at zero (first pass) or from c. kTok2 / kRow2: whether
// the second token group / row tile exists.
template <bool kTok2, bool kRow2>
inline void Bf16Block(const uint16_t* a, int64_t a_stride, const uint16_t* b, int64_t b_step,
                      int64_t kb0, int64_t kb1, float* c, int64_t c_stride, bool first, float* o,
                      int64_t o_stride) {
  const int64_t cs = c_stride * 4, as = a_stride * 2, os = o_stride * 4;
  float* c1 = c + 16;
  float* c2 = c + 16 * c_stride;
  float* c3 = c2 + 16;
  if (first) {
    _tile_zero(0);
    if (kRow2) _tile_zero(1);
    if (kTok2) _tile_zero(2);
    if (kTok2 && kRow2) _tile_zero(3);
  } else {
    _tile_loadd(0, c, cs);
    if (kRow2) _tile_loadd(1, c1, cs);
    if (kTok2) _tile_loadd(2, c2, cs);
    if (kTok2 && kRow2) _tile_loadd(3, c3, cs);
  }
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    _tile_loadd(4, a + kb * 32, as);
    _tile_loadd(6, b + kb * b_step, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (kTok2) {
      _tile_loadd(5, a + 16 * a_stride + kb * 32, as);
      _tile_dpbf16ps(2, 5, 6);
    }
    if (kRow2) {
      _tile_loadd(7, b + kb * b_step + 512, 64);
      _tile_dpbf16ps(1, 4, 7);
      if (kTok2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  if (o) {  // the last pass, and the caller's output holds every row and token of the tiles
    _tile_stored(0, o, os);
    if (kRow2) _tile_stored(1, o + 16, os);
    if (kTok2) _tile_stored(2, o + 16 * o_stride, os);
    if (kTok2 && kRow2) _tile_stored(3, o + 16 * o_stride + 16, os);
    return;
  }
  _tile_stored(0, c, cs);
  if (kRow2) _tile_stored(1, c1, cs);
  if (kTok2) _tile_stored(2, c2, cs);
  if (kTok2 && kRow2) _tile_stored(3, c3, cs);
}

// acc[r] += C[r] · (sa × sw[r]) (+ SA × mw[r]) for one block's products C.
inline void Accumulate(const int32_t (*c)[kPanelTokens], const __m512 sav, const float* sw,
                       const float* mw, int64_t nkb, int64_t b, const float* SA, bool has_min,
                       __m512* acc) {
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r)
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[r])),
                             _mm512_mul_ps(sav, _mm512_set1_ps(sw[r * nkb + b])), acc[r]);
  if (has_min) {
    const __m512 m = _mm512_loadu_ps(SA + b * kPanelTokens);
#pragma GCC unroll 16
    for (int r = 0; r < kTileRows; ++r)
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
  alignas(64) int32_t c[2][kTileRows][kPanelTokens];
  alignas(64) float res[kTileRows][kPanelTokens];
  const int rows = w.rows;
  for (int g = 0; g < p.groups; ++g) {
    const uint8_t* panel = p.q.data() + static_cast<size_t>(g) * k * kPanelTokens;
    const float* sa = p.sa.data() + static_cast<size_t>(g) * nkb * kPanelTokens;
    const float* SA = p.SA.data() + static_cast<size_t>(g) * nkb * kPanelTokens;
    __m512 acc[kTileRows];
    for (int r = 0; r < kTileRows; ++r) acc[r] = _mm512_setzero_ps();
    const float* sw = w.sw.data();
    const float* mw = w.mw.data();
    const int64_t a_step = kTileRows * block, b_step = block * kPanelTokens;
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
        Accumulate(c[(b - 1) & 1], _mm512_loadu_ps(sa + (b - 1) * kPanelTokens), sw, mw, nkb, b - 1,
                   SA, has_min, acc);
    }
    for (int r = 0; r < kTileRows; ++r) _mm512_store_ps(res[r], acc[r]);
    const int nt = std::min(kPanelTokens, p.n - g * kPanelTokens);
    for (int t = 0; t < nt; ++t) {
      float* o = out + (g * kPanelTokens + t) * ts;
      for (int r = 0; r < rows; ++r) o[r * rs] = res[r][t];
    }
  }
}

namespace {

// v[i] holds sixteen 32-bit values of row i; afterwards v[j] holds value j of each row.
inline void Transpose16(__m512i* v) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Now v[4a + b] holds, in 128-bit lane L, value 4L + (b's position) of rows 4a … 4a + 3.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(v[i], v[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(v[i], v[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_i32x4(v[i + 8], v[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(v[i + 8], v[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    v[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    v[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    v[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

// 32 floats (lo, hi) as sixteen bf16 pairs.
inline __m512i Pairs(__m512 lo, __m512 hi) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

inline __m512 Int8ToFloats(const int8_t* q) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
}

// Writes element block kb's sixteen lines (pair p = line p) from the rows' pairs.
inline void StoreTile(__m512i* v, uint16_t* dst) {
  Transpose16(v);
  for (int p = 0; p < 16; ++p) _mm512_storeu_si512(dst + p * 32, v[p]);
}

// The tiles of k / 32 element blocks: for block kb, row i < count gives its 32 values as
// bf16 pairs (pairs(i, kb)), the rows past count are zero, and the sixteen are transposed
// into dst + kb * step.
template <typename Pairs32>
inline void DecodeTiles(int count, int64_t k, uint16_t* dst, int64_t step, const Pairs32& pairs) {
  for (int64_t kb = 0; kb < k / 32; ++kb) {
    __m512i v[16];
    for (int i = 0; i < 16; ++i) v[i] = i < count ? pairs(i, kb) : _mm512_setzero_si512();
    StoreTile(v, dst + kb * step);
  }
}

}  // namespace

void QuantsTileToBf16(const int8_t* q, const float* sw, const float* mw, int count, int bl,
                      int64_t k, uint16_t* dst, int64_t step) {
  const int64_t nkb = k / bl;
  DecodeTiles(count, k, dst, step, [&](int i, int64_t kb) {
    const int8_t* qi = q + i * k + kb * 32;
    const int64_t b0 = i * nkb + kb * 32 / bl, b1 = i * nkb + (kb * 32 + 16) / bl;
    // Multiply, then add, each rounded: exactly Dequantize's value before the bf16
    // rounding.
    const __m512 lo = _mm512_add_ps(_mm512_mul_ps(Int8ToFloats(qi), _mm512_set1_ps(sw[b0])),
                                    _mm512_set1_ps(mw[b0]));
    const __m512 hi = _mm512_add_ps(_mm512_mul_ps(Int8ToFloats(qi + 16), _mm512_set1_ps(sw[b1])),
                                    _mm512_set1_ps(mw[b1]));
    return Pairs(lo, hi);
  });
}

void Q8_0TileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step) {
  DecodeTiles(count, k, dst, step, [&](int i, int64_t kb) {
    const auto* blk = reinterpret_cast<const blocks::Q8_0*>(rows[i]) + kb;
    const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(blk->d)));
    const int8_t* qs = blk->qs;
    return Pairs(_mm512_mul_ps(Int8ToFloats(qs), d), _mm512_mul_ps(Int8ToFloats(qs + 16), d));
  });
}

void FloatsToBf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, reinterpret_cast<__m512i>(v));
  }
}

namespace {

// 32 quants (unsigned, 0 … 63) as bf16 pairs of s0 * q + m0 (first sixteen) and s1 * q + m1
// (the rest): multiply, then add, each rounded, as Dequantize computes them.
inline __m512i QuantsToPairs(__m256i q, float s0, float m0, float s1, float m1) {
  const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(q)));
  const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(q, 1)));
  return Pairs(_mm512_add_ps(_mm512_mul_ps(a, _mm512_set1_ps(s0)), _mm512_set1_ps(m0)),
               _mm512_add_ps(_mm512_mul_ps(b, _mm512_set1_ps(s1)), _mm512_set1_ps(m1)));
}

}  // namespace

void Q4_KTileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step) {
  using blocks::Q4_K;
  const __m256i low = _mm256_set1_epi8(0x0F);
  DecodeTiles(count, k, dst, step, [&](int i, int64_t kb) {
    const int64_t s = kb / 8;
    const int j = static_cast<int>(kb % 8);  // sub-block: nibble j & 1 of bytes 32 * (j / 2) …
    const auto* blk = reinterpret_cast<const Q4_K*>(rows[i]) + s;
    uint8_t sc, m;
    blocks::ScaleMinK4(j, blk->scales, &sc, &m);
    const float sw = _cvtsh_ss(blk->d) * sc, mw = -(_cvtsh_ss(blk->dmin) * m);
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * (j / 2)));
    if (j & 1) q = _mm256_srli_epi16(q, 4);
    return QuantsToPairs(_mm256_and_si256(q, low), sw, mw, sw, mw);
  });
}

void Q6_KTileToBf16(const uint8_t* const* rows, int count, int64_t k, uint16_t* dst, int64_t step) {
  using blocks::Q6_K;
  const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
  DecodeTiles(count, k, dst, step, [&](int i, int64_t kb) {
    const int64_t s = kb / 8;
    const int j = static_cast<int>(kb % 8), h = j / 4, quarter = j % 4;
    // Elements 128 h + 32 quarter + l: low bits from ql[64 h + 32 (quarter & 1) + l] (low
    // nibble for quarters 0, 1, high for 2, 3), high bits 2 quarter … of qh[32 h + l].
    const auto* blk = reinterpret_cast<const Q6_K*>(rows[i]) + s;
    __m256i lq =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h + 32 * (quarter & 1)));
    if (quarter >= 2) lq = _mm256_srli_epi16(lq, 4);
    lq = _mm256_and_si256(lq, low);
    __m256i hq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * h));
    hq = _mm256_and_si256(_mm256_srli_epi16(hq, 2 * quarter), two);
    const __m256i q = _mm256_or_si256(lq, _mm256_slli_epi16(hq, 4));  // 0 … 63, q6 + 32
    const int8_t* sc = blk->scales + 2 * j;
    const float d = _cvtsh_ss(blk->d);
    // x = (d * scale) * (q6 - 32), as Dequantize computes it.
    const float s0 = d * sc[0], s1 = d * sc[1];
    const __m256i qs = _mm256_sub_epi8(q, _mm256_set1_epi8(32));
    const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(qs)));
    const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(qs, 1)));
    return Pairs(_mm512_mul_ps(a, _mm512_set1_ps(s0)), _mm512_mul_ps(b, _mm512_set1_ps(s1)));
  });
}

void TileBf16(const Bf16Rows& w, const Bf16Tokens& x, float* out, int64_t out_stride) {
  ConfigureBf16();
  const int64_t nkb = w.k / 32;
  const int rt_count = w.rows / kTileRows, groups = x.rows / kPanelTokens;
  const int64_t b_step = static_cast<int64_t>(rt_count) * 512;
  // The results, kept here (16 × 16 floats a tile, x.rows × w.rows) between passes.
  thread_local std::vector<float> cbuf;
  cbuf.resize(static_cast<size_t>(x.rows) * w.rows);
  // Whole tiles go straight to `out` on the last pass; a partial one (the last tokens or
  // rows) through cbuf.
  const bool direct = x.n == x.rows && w.used == w.rows;
  for (int64_t kb0 = 0; kb0 < nkb; kb0 += kBf16Chunk) {
    const int64_t kb1 = std::min(nkb, kb0 + kBf16Chunk);
    const bool first = kb0 == 0;
    float* o_base = direct && kb1 == nkb ? out : nullptr;
    for (int g = 0; g < groups; g += 2) {
      const uint16_t* a = x.a.data() + static_cast<size_t>(g) * 16 * x.stride;
      const bool tok2 = g + 1 < groups;
      for (int rt = 0; rt < rt_count; rt += 2) {
        const uint16_t* b = w.b.data() + rt * 512;
        float* c = cbuf.data() + static_cast<size_t>(g) * 16 * w.rows + rt * 16;
        const bool row2 = rt + 1 < rt_count;
        float* o = o_base ? o_base + static_cast<int64_t>(g) * 16 * out_stride + rt * 16 : nullptr;
        if (tok2 && row2)
          Bf16Block<true, true>(a, x.stride, b, b_step, kb0, kb1, c, w.rows, first, o, out_stride);
        else if (tok2)
          Bf16Block<true, false>(a, x.stride, b, b_step, kb0, kb1, c, w.rows, first, o, out_stride);
        else if (row2)
          Bf16Block<false, true>(a, x.stride, b, b_step, kb0, kb1, c, w.rows, first, o, out_stride);
        else
          Bf16Block<false, false>(a, x.stride, b, b_step, kb0, kb1, c, w.rows, first, o,
                                  out_stride);
      }
    }
  }
  if (direct) return;
  for (int t = 0; t < x.n; ++t)
    std::memcpy(out + t * out_stride, cbuf.data() + static_cast<size_t>(t) * w.rows,
                static_cast<size_t>(w.used) * sizeof(float));
}

}  // namespace ggswarm::kernels::amx
