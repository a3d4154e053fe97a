// AVX-512 VNNI row dots: one activation row against many weight rows, the matrix–vector
// products of generation (compiled for AVX-512 VNNI: see avx512_target.h), in the
// four-stream loop of rowdot_rows.h.
#include "kernels/avx512_target.h"
// (first: the target applies to everything below)

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "base/fp16.h"
#include "kernels/kernels_avx512.h"
#include "kernels/rowdot_rows.h"
#include "kernels/target_helpers.h"
#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace ggswarm::kernels::avx512 {
using namespace blocks;  // NOLINT: the block layouts
namespace {

using simd::H;
using simd::Hsum128;

// --- Q8_0 and Q4_0: four 32-element blocks per step, summed in 32-bit lanes -------------
//
// A step's two registers of weights hold the four blocks' first sixteen bytes (Q4_0:
// elements), then their last sixteen, four bytes at a time in turn: lane l belongs to block
// l % 4. RowDotAct lays the activations out the same way (kernels.cpp, LayOutForAvx512).
// So two vpdpbusd into one register leave each block's whole integer dot product in its
// four lanes, and one conversion, one product of scales (each block's scale in its lanes is
// a 128-bit broadcast of four) and one multiply-add finish the four blocks: five vector
// operations per token for 128 weights, where pairs of blocks took eight.

// The four weight scales of blocks i … i + 3 as floats, repeated in each 128-bit lane: the
// halves gathered with scalar loads into one 64-bit word and converted at once.
inline __m512 WeightScales4(const void* blocks, uint64_t stride) {
  const auto* x = static_cast<const uint8_t*>(blocks);
  uint16_t h[4];
  for (int j = 0; j < 4; ++j) std::memcpy(&h[j], x + j * stride, 2);
  const uint64_t packed = h[0] | static_cast<uint64_t>(h[1]) << 16 |
                          static_cast<uint64_t>(h[2]) << 32 | static_cast<uint64_t>(h[3]) << 48;
  return _mm512_broadcast_f32x4(_mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(packed))));
}

// Q8_0: 32 signed bytes per block. vpdpbusd multiplies unsigned by signed bytes, so the
// activations come plus 128 and the sums start at -128 Σ w, which Prep works out with the
// weights (once for every token of a batch).
struct QuadQ8_0 {
  using Block = Q8_0;
  static constexpr GgmlType kType = GgmlType::Q8_0;
  static constexpr int64_t kTwoStreamsAbove = 8 * 2048;  // RowsTokensOf
  static constexpr bool kCorr = false;
  struct Wt {
    __m512i lo, hi, start;
  };
  static Wt Prep(const Q8_0* x) {
    // Blocks 0 and 1 in y01 (four-byte words 0-7, 8-15), 2 and 3 in y23 (16-23, 24-31 of
    // the pair); lane l takes word l / 4 (then 4 + l / 4) of block l % 4.
    const __m512i y01 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs)), 1);
    const __m512i y23 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[2].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[3].qs)), 1);
    const __m512i idx = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    const __m512i lo = _mm512_permutex2var_epi32(y01, idx, y23);
    const __m512i hi =
        _mm512_permutex2var_epi32(y01, _mm512_add_epi32(idx, _mm512_set1_epi32(4)), y23);
    const __m512i m128 = _mm512_set1_epi8(-128);
    const __m512i sum128 =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), m128, lo), m128, hi);
    return {lo, hi, _mm512_sub_epi32(_mm512_setzero_si512(), sum128)};
  }
  static __m512i Mul(const Wt& w, const int8_t* a, const int32_t* /*corr: in start*/) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(w.start, _mm512_loadu_si512(a), w.lo),
                               _mm512_loadu_si512(a + 64), w.hi);
  }
};

// Q4_0: sixteen bytes per block, element j in the low nibble of byte j and element j + 16 in
// the high one. The nibbles (0..15) are the unsigned operand; Σ (q - 8) x = Σ q x - 8 Σ x,
// the second term preloaded (corr: one value per block, in lanes 0-3).
struct QuadQ4_0 {
  using Block = Q4_0;
  static constexpr GgmlType kType = GgmlType::Q4_0;
  static constexpr int64_t kTwoStreamsAbove = 8 * 4096;  // RowsTokensOf
  static constexpr bool kCorr = true;
  struct Wt {
    __m512i lo, hi;
  };
  static Wt Prep(const Q4_0* x) {
    __m512i q = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[0].qs)));
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[1].qs)), 1);
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[2].qs)), 2);
    q = _mm512_inserti32x4(q, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[3].qs)), 3);
    // Lane l: word l / 4 of block l % 4.
    q = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), q);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    return {_mm512_and_si512(q, nib), _mm512_and_si512(_mm512_srli_epi16(q, 4), nib)};
  }
  static __m512i Mul(const Wt& w, const int8_t* a, const int32_t* corr) {
    const __m512i c =
        _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(corr)));
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, w.lo, _mm512_loadu_si512(a)), w.hi,
                               _mm512_loadu_si512(a + 64));
  }
};

// A legacy type four blocks per step, the block-count remainder by the scalar reference.
template <typename Quad>
struct QuadKernel {
  using Block = typename Quad::Block;
  static constexpr int64_t kTwoStreamsAbove = Quad::kTwoStreamsAbove;
  static constexpr int kStepBytes = 4 * sizeof(Block);
  struct Acc {
    __m512 a;
  };
  // A step's weights, ready for any token's activations.
  struct W {
    typename Quad::Wt q;
    __m512 s;  // the blocks' scales, block l % 4's in lane l
  };
  const RowDotAct& act;
  int64_t nb, steps;
  QuadKernel(const RowDotAct& a, int64_t k) : act(a), nb(k / kQK), steps(k / kQK / 4) {}

  Acc Zero() const { return {_mm512_setzero_ps()}; }
  W Load(const uint8_t* row, int64_t j) const {
    const auto* x = reinterpret_cast<const Block*>(row) + 4 * j;
    return {Quad::Prep(x), WeightScales4(x, sizeof(Block))};
  }
  // Per token: two vpdpbusd, and the sums times the weight and activation scales.
  void Apply(const W& w, int64_t j, Acc& acc) const {
    const int8_t* a = act.q.data() + j * 4 * kQK;
    const int32_t* corr = Quad::kCorr ? act.corr.data() + j * 4 : nullptr;
    const __m512 da = _mm512_broadcast_f32x4(_mm_loadu_ps(act.d.data() + j * 4));
    acc.a =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(Quad::Mul(w.q, a, corr)), _mm512_mul_ps(w.s, da), acc.a);
  }
  void Step(const uint8_t* row, int64_t j, Acc& acc) const { Apply(Load(row, j), j, acc); }
  float Finish(const uint8_t* row, const Acc& acc) const {
    float s = _mm512_reduce_add_ps(acc.a);
    const int64_t i = 4 * steps;
    if (i < nb)
      s += VecDotBlocks(Quad::kType, reinterpret_cast<const Block*>(row) + i,
                        static_cast<const Q8_0*>(act.act) + i, (nb - i) * kQK);
    return s;
  }
};

// --- Q4_K: 256-element super-blocks of eight 32-element sub-blocks, 6-bit scales and mins --

struct Q4_KKernel {
  static constexpr int kStepBytes = sizeof(Q4_K);
  static constexpr int64_t kTwoStreamsAbove = 8 * 4096;  // RowsTokensOf
  struct Acc {
    __m512 acc;
    __m128 accm;
  };
  const Q8_K* a;
  const int8_t* aq;     // a's quants in nibble order (PrepareRowDot)
  const int16_t* sums;  // a's sub-block sums
  int64_t steps;
  // Lanes 0-7 of a product of low nibbles are sub-block 4c, lanes 8-15 sub-block 4c + 2;
  // of high nibbles 4c + 1 and 4c + 3.
  // The byte shuffles that give each 32-bit lane its sub-block's scale as two 16-bit
  // copies; and those that unpack the scales and mins (Load).
  __m512i idx[2];
  __m128i low_src, high_src, low_mask;
  Q4_KKernel(const RowDotAct& act, int64_t k)
      : a(static_cast<const Q8_K*>(act.act)),
        aq(act.q.data()),
        sums(act.sums.data()),
        steps(k / kQK_K) {
    // 128-bit lanes 0-1: four words of sub-block a's scale, then four of a + 1; lanes 2-3
    // the same for a + 2 and a + 3 (the order vpackssdw leaves Apply's sums in).
    auto lanes = [](int a) {
      auto half = [](int x, int y) {
        const int wx = static_cast<int>(0x80008000u | x << 16 | x);
        const int wy = static_cast<int>(0x80008000u | y << 16 | y);
        const __m128i p = _mm_setr_epi32(wx, wx, wy, wy);
        return _mm256_set_m128i(p, p);
      };
      return _mm512_inserti64x4(_mm512_castsi256_si512(half(a, a + 1)), half(a + 2, a + 3), 1);
    };
    for (int c = 0; c < 2; ++c) idx[c] = lanes(4 * c);
    // In the block's first 16 bytes the scales' 12 are bytes 4-15 (q[0] … q[11]). Scale j < 4:
    // q[j] & 63; j >= 4: (q[j+4] & 15) | (q[j-4] >> 6) << 4. Min j < 4: q[j+4] & 63; j >= 4:
    // (q[j+4] >> 4) | (q[j] >> 6) << 4.
    low_src = _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    high_src = _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11);
    low_mask = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15);
  }

  Acc Zero() const { return {_mm512_setzero_ps(), _mm_setzero_ps()}; }
  // A super-block's weights, ready for any token's activations: the nibbles, the scales
  // lined up with them, d and dmin, and the mins.
  struct W {
    __m512i lo[2], hi[2], sc[2];
    __m128 ddw;
    __m128i m16;
  };
  W Load(const uint8_t* row, int64_t i) const {
    const Q4_K& x = reinterpret_cast<const Q4_K*>(row)[i];
    const __m512i nib = _mm512_set1_epi8(0x0F);
    // d, dmin and the twelve bytes of scales and mins in one register, unpacked there (scalar
    // unpacking and moving into vectors took as long as the products): bytes 0-7 the eight
    // 6-bit scales, 8-15 the eight mins.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&x));
    const __m128i lows = _mm_shuffle_epi8(v, low_src);
    const __m128i low =
        _mm_and_si128(_mm_mask_blend_epi8(0xF000, lows, _mm_srli_epi16(lows, 4)), low_mask);
    const __m128i high =
        _mm_and_si128(_mm_srli_epi16(_mm_shuffle_epi8(v, high_src), 2), _mm_set1_epi8(0x30));
    const __m128i sm = _mm_or_si128(low, high);
    const __m512i sm4 = _mm512_broadcast_i32x4(sm);
    W w;
    for (int c = 0; c < 2; ++c) {
      const __m512i q = _mm512_loadu_si512(x.qs + 64 * c);
      w.lo[c] = _mm512_and_si512(q, nib);
      w.hi[c] = _mm512_and_si512(_mm512_srli_epi16(q, 4), nib);
      w.sc[c] = _mm512_shuffle_epi8(sm4, idx[c]);
    }
    w.ddw = _mm_cvtph_ps(v);  // d and dmin in lanes 0 and 1
    w.m16 = _mm_unpackhi_epi8(sm, _mm_setzero_si128());
    return w;
  }
  void Apply(const W& w, int64_t i, Acc& acc) const {
    __m512i isum = _mm512_setzero_si512();
    for (int c = 0; c < 2; ++c) {
      const __m512i alo = _mm512_loadu_si512(aq + i * kQK_K + 128 * c);
      const __m512i ahi = _mm512_loadu_si512(aq + i * kQK_K + 128 * c + 64);
      // Each 32-bit lane's four products (vpdpbusd: nibbles unsigned, activations signed),
      // at most 4 · 15 · 128 in size: packed into 16 bits, low nibbles' and high nibbles'
      // sums side by side, then times their sub-blocks' scales and summed by vpdpwssd.
      const __m512i plo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.lo[c], alo);
      const __m512i phi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.hi[c], ahi);
      isum = _mm512_dpwssd_epi32(isum, _mm512_packs_epi32(plo, phi), w.sc[c]);
    }
    // d and dmin times the activations' scale; then the mins, Σ_j m_j · (sum of sub-block j
    // of the activations).
    const __m128 dd = _mm_mul_ps(w.ddw, _mm_set1_ps(a[i].d));
    const __m128i mins =
        _mm_madd_epi16(w.m16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(sums + 8 * i)));
    acc.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(dd), acc.acc);
    acc.accm = _mm_fmadd_ps(_mm_cvtepi32_ps(mins), _mm_permute_ps(dd, 0x55), acc.accm);
  }
  void Step(const uint8_t* row, int64_t i, Acc& acc) const { Apply(Load(row, i), i, acc); }
  float Finish(const uint8_t*, const Acc& acc) const {
    return _mm512_reduce_add_ps(acc.acc) - Hsum128(acc.accm);
  }
};

// --- Q6_K: 256-element super-blocks, 4 + 2 bits per weight, sixteen 8-bit scales ----------

struct Q6_KKernel {
  static constexpr int kStepBytes = sizeof(Q6_K);
  static constexpr int64_t kTwoStreamsAbove = INT64_MAX;  // RowsTokensOf: never
  struct Acc {
    __m512 acc;
  };
  const Q8_K* a;
  int64_t steps;
  // Shift counts (16-bit lanes) that bring qh's bit pair for each quarter down: the low 256
  // bits serve ql bytes 0-31, the high 256 bits bytes 32-63.
  __m512i cnt_lo, cnt_hi, idx[4];
  Q6_KKernel(const RowDotAct& act, int64_t k)
      : a(static_cast<const Q8_K*>(act.act)), steps(k / kQK_K) {
    cnt_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    cnt_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    idx[0] = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    for (int q = 1; q < 4; ++q) idx[q] = _mm512_add_epi32(idx[0], _mm512_set1_epi32(4 * q));
  }

  Acc Zero() const { return {_mm512_setzero_ps()}; }
  // A super-block's weights, ready for any token's activations: the 6-bit quants (stored
  // +32), the scales lined up with them and as 16-bit values, and d.
  struct W {
    __m512i qlo[2], qhi[2], sc[4];
    __m256i sc16;
    float d;
  };
  W Load(const uint8_t* row, int64_t i) const {
    const Q6_K& x = reinterpret_cast<const Q6_K*>(row)[i];
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i three = _mm512_set1_epi8(0x03);
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
    __m512i scv = _mm512_cvtepi8_epi32(sc8);
    scv = _mm512_or_si512(_mm512_and_si512(scv, _mm512_set1_epi32(0xFFFF)),
                          _mm512_slli_epi32(scv, 16));  // two 16-bit copies per lane
    W w;
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(x.ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h)));
      const __m512i hlo =
          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, cnt_lo), three), 4);
      const __m512i hhi =
          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, cnt_hi), three), 4);
      w.qlo[h] = _mm512_or_si512(_mm512_and_si512(ql, nib), hlo);
      w.qhi[h] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nib), hhi);
    }
    for (int q = 0; q < 4; ++q) w.sc[q] = _mm512_permutexvar_epi32(idx[q], scv);
    w.sc16 = _mm256_cvtepi8_epi16(sc8);
    w.d = H(x.d);
    return w;
  }
  void Apply(const W& w, int64_t i, Acc& acc) const {
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      // Pairs of products in 16 bits (63 · 127 · 2 fits), then times the scale (vpdpwssd).
      const __m512i plo = _mm512_maddubs_epi16(w.qlo[h], _mm512_loadu_si512(a[i].qs + 128 * h));
      const __m512i phi =
          _mm512_maddubs_epi16(w.qhi[h], _mm512_loadu_si512(a[i].qs + 128 * h + 64));
      isum = _mm512_dpwssd_epi32(isum, plo, w.sc[2 * h]);
      isum = _mm512_dpwssd_epi32(isum, phi, w.sc[2 * h + 1]);
    }
    // The quants are stored +32: subtract 32 Σ_j sc_j bsum_j.
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
    const __m256i corr = _mm256_madd_epi16(bs, w.sc16);
    isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
    acc.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(w.d * a[i].d), acc.acc);
  }
  void Step(const uint8_t* row, int64_t i, Acc& acc) const { Apply(Load(row, i), i, acc); }
  float Finish(const uint8_t*, const Acc& acc) const { return _mm512_reduce_add_ps(acc.acc); }
};

// T tokens' kernels of type K (one per activation row).
template <typename K, size_t... I>
std::array<K, sizeof...(I)> KernelsFor(const RowDotAct* acts, int64_t k,
                                       std::index_sequence<I...>) {
  return {K(acts[I], k)...};
}

// How many tokens' sums one pass over the weights takes (kernels::RowDotGroup): eight. Q8_0
// and Q4_0 hold a step's weights in six registers and a token's sums in one; the K-quants'
// super-blocks take eight registers or more and a token's sums one or two, which still fit
// (tinyllama-shaped Q4_K_M, `bench -p N -t 2` against groups of four: 6 tokens 165 → 196
// tok/s, 8: 184 → 192, 16: 194 → 201).
//
// Rows in one stream or two side by side: two read each step's activations once for both
// rows, which pays once the T tokens' activations (about T · k bytes) no longer stay in L1
// beside the weights streaming through it, and costs registers below that. Where that
// happens depends on how many bytes of weights a step streams: `bench_rowdots 1024 2 704 K`
// (both cores, 8 tokens, streamed, GMAC/s, one stream against two) gave
//   Q8_0: k = 2048 295-301 / 267-278, 3072 209-210 / 247, 4096 194-198 / 267, 5632 159 / 259;
//   Q4_0: k = 4096 277 / 263, 5632 196 / 266;  Q4_K: 4096 293 / 283, 5632 249 / 297;
//   Q6_K: one stream as fast or faster up to k = 14,336 (281 / 280).
// So each kernel names the T · k above which it takes two (kTwoStreamsAbove); up to four
// tokens always take two. The bits are the same either way (each row's sums in its order).
template <int T, typename K>
void RowsTokensOf(const std::array<K, T>& kernels, int64_t k, const uint8_t* rows, uint64_t rb,
                  int64_t nrows, float* y, int64_t ts) {
  if (T <= 4 || T * k > K::kTwoStreamsAbove)
    return rowdot::RowsTokens<T, 2>(kernels.data(), rows, rb, nrows, y, ts);
  return rowdot::RowsTokens<T, 1>(kernels.data(), rows, rb, nrows, y, ts);
}

template <int T>
void TokensOf(GgmlType w, const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts,
              int64_t k, float* y, int64_t ts) {
  const auto seq = std::make_index_sequence<T>{};
  switch (w) {
    case GgmlType::Q8_0:
      return RowsTokensOf<T>(KernelsFor<QuadKernel<QuadQ8_0>>(acts, k, seq), k, rows, rb, nrows, y,
                             ts);
    case GgmlType::Q4_0:
      return RowsTokensOf<T>(KernelsFor<QuadKernel<QuadQ4_0>>(acts, k, seq), k, rows, rb, nrows, y,
                             ts);
    case GgmlType::Q4_K:
      return RowsTokensOf<T>(KernelsFor<Q4_KKernel>(acts, k, seq), k, rows, rb, nrows, y, ts);
    default:
      return RowsTokensOf<T>(KernelsFor<Q6_KKernel>(acts, k, seq), k, rows, rb, nrows, y, ts);
  }
}

}  // namespace

void DotQ8_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(QuadKernel<QuadQ8_0>(act, k), rows, rb, nrows, y, ys);
}

void DotQ4_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(QuadKernel<QuadQ4_0>(act, k), rows, rb, nrows, y, ys);
}

void DotQ4_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(Q4_KKernel(act, k), rows, rb, nrows, y, ys);
}

void DotQ6_K(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(Q6_KKernel(act, k), rows, rb, nrows, y, ys);
}

void DotsTokens(GgmlType w, const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts,
                int n, int64_t k, float* y, int64_t ts) {
  const auto of = [&](auto group, int t) {
    TokensOf<decltype(group)::value>(w, rows, rb, nrows, acts + t, k, y + t * ts, ts);
  };
  rowdot::InGroupsOf<8>(n, of);
}

uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams) {
  const uint64_t part = n / streams / 128 * 128;
  __m512i acc[8];
  for (int s = 0; s < 8; ++s) acc[s] = _mm512_setzero_si512();
  for (uint64_t i = 0; i < part; i += 128)
    for (int s = 0; s < streams; ++s) {
      const uint8_t* q = p + s * part + i;
      _mm_prefetch(reinterpret_cast<const char*>(q) + rowdot::kPrefetch, _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(q) + rowdot::kPrefetch + 64, _MM_HINT_T1);
      acc[s] = _mm512_xor_si512(
          acc[s], _mm512_xor_si512(_mm512_loadu_si512(q), _mm512_loadu_si512(q + 64)));
    }
  for (int s = 1; s < 8; ++s) acc[0] = _mm512_xor_si512(acc[0], acc[s]);
  alignas(64) uint64_t w[8];
  _mm512_store_si512(w, acc[0]);
  return w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5] ^ w[6] ^ w[7];
}

namespace {

// One Q8_0 block of x, as ggml quantizes it: returns the scale (f16 bits) and writes the 32
// quants to q.
uint16_t QuantizeQ8_0Block(const float* x, int8_t* q) {
  const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const float id = amax != 0 ? 127.f / amax : 0.f;
  const __m512 vid = _mm512_set1_ps(id);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q),
                   _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16),
                   _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid))));
  return FloatToHalf(amax / 127.f);
}

// Lane b of the result is op over the 16 lanes of v[b], for 16 vectors at once: each level
// halves the vectors, pairing lanes of two (15 pairs of permutes instead of 16 reductions).
template <typename Op>
__m512i Transposed(__m512i v[16], Op op) {
  auto idx = [](int a0, int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9,
                int a10, int a11, int a12, int a13, int a14, int a15) {
    return _mm512_setr_epi32(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
  };
  auto level = [&](int half, __m512i lo, __m512i hi) {
    for (int b = 0; b < half; ++b)
      v[b] = op(_mm512_permutex2var_epi32(v[b], lo, v[b + half]),
                _mm512_permutex2var_epi32(v[b], hi, v[b + half]));
  };
  // v[b] lanes 0-7 then hold block b's partial results, lanes 8-15 block b + 8's; and so on.
  level(8, idx(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
        idx(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
  level(4, idx(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
        idx(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31));
  level(2, idx(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
        idx(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31));
  level(1, idx(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
        idx(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31));
  return v[0];
}

}  // namespace

void QuantizeQ8_0(const float* x, Q8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) y[i].d = QuantizeQ8_0Block(x, y[i].qs);
}

// Four blocks' quants (their first sixteen in p0[j], last sixteen in p1[j]) in the four-block
// kernels' layout, each byte xor `flip`: per half, a 4 × 4 transpose of four-byte words.
inline void StoreQuad(const __m128i* p0, const __m128i* p1, int8_t* q, __m128i flip) {
  for (int half = 0; half < 2; ++half) {
    const __m128i* a = half ? p1 : p0;
    const __m128i t0 = _mm_unpacklo_epi32(a[0], a[1]), t1 = _mm_unpacklo_epi32(a[2], a[3]);
    const __m128i t2 = _mm_unpackhi_epi32(a[0], a[1]), t3 = _mm_unpackhi_epi32(a[2], a[3]);
    auto* out = reinterpret_cast<__m128i*>(q + 64 * half);
    _mm_storeu_si128(out, _mm_xor_si128(_mm_unpacklo_epi64(t0, t1), flip));
    _mm_storeu_si128(out + 1, _mm_xor_si128(_mm_unpackhi_epi64(t0, t1), flip));
    _mm_storeu_si128(out + 2, _mm_xor_si128(_mm_unpacklo_epi64(t2, t3), flip));
    _mm_storeu_si128(out + 3, _mm_xor_si128(_mm_unpackhi_epi64(t2, t3), flip));
  }
}

void QuantizeQ8_0Split(const float* x, int64_t nb, int8_t* q, float* d, int32_t* corr,
                       bool plus128) {
  alignas(64) float ids[16];
  const __m128i flip = _mm_set1_epi8(plus128 ? static_cast<char>(0x80) : 0);
  __m128i p0[4], p1[4];
  int64_t i = 0;
  // Sixteen blocks at a time: their maxima, scales and sums side by side in one register.
  for (; i + 16 <= nb; i += 16) {
    const float* xb = x + i * kQK;
    __m512i v[16];
    for (int b = 0; b < 16; ++b)
      v[b] = _mm512_castps_si512(_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + b * kQK)),
                                               _mm512_abs_ps(_mm512_loadu_ps(xb + b * kQK + 16))));
    // Non-negative floats order as their bits do: the maximum as integers.
    const __m512 amax = _mm512_castsi512_ps(
        Transposed(v, [](__m512i a, __m512i b) { return _mm512_max_epi32(a, b); }));
    const __mmask16 nz = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ);
    _mm512_store_ps(ids, _mm512_maskz_div_ps(nz, _mm512_set1_ps(127.f), amax));
    const __m256i dh = _mm512_cvtps_ph(_mm512_div_ps(amax, _mm512_set1_ps(127.f)),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(d + i, _mm512_cvtph_ps(dh));
    for (int b = 0; b < 16; ++b) {
      const __m512 vid = _mm512_set1_ps(ids[b]);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + b * kQK), vid));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + b * kQK + 16), vid));
      p0[b % 4] = _mm512_cvtsepi32_epi8(q0);
      p1[b % 4] = _mm512_cvtsepi32_epi8(q1);
      v[b] = _mm512_add_epi32(_mm512_cvtepi8_epi32(p0[b % 4]), _mm512_cvtepi8_epi32(p1[b % 4]));
      if (b % 4 == 3) StoreQuad(p0, p1, q + (i + b - 3) * kQK, flip);
    }
    if (!corr) continue;
    // -8 Σ q, block i + b's in lane b.
    _mm512_storeu_si512(
        corr + i, _mm512_mullo_epi32(
                      Transposed(v, [](__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }),
                      _mm512_set1_epi32(-8)));
  }
  // The last whole fours one block at a time (nb is a multiple of four).
  alignas(16) int8_t qb[4][kQK];
  for (; i + 4 <= nb; i += 4) {
    for (int j = 0; j < 4; ++j) {
      d[i + j] = H(QuantizeQ8_0Block(x + (i + j) * kQK, qb[j]));
      p0[j] = _mm_load_si128(reinterpret_cast<const __m128i*>(qb[j]));
      p1[j] = _mm_load_si128(reinterpret_cast<const __m128i*>(qb[j] + 16));
      if (!corr) continue;
      int32_t sum = 0;
      for (int e = 0; e < kQK; ++e) sum += qb[j][e];
      corr[i + j] = -8 * sum;
    }
    StoreQuad(p0, p1, q + i * kQK, flip);
  }
}

void QuantizeQ8_K(const float* x, Q8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < kQK_K; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(Q8_K));
      continue;
    }
    // The signed value of the first element whose magnitude is the maximum.
    float max = 0;
    const __m512 va = _mm512_set1_ps(amax);
    for (int j = 0; j < kQK_K; j += 16) {
      const __m512 v = _mm512_loadu_ps(x + j);
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(v), va, _CMP_EQ_OQ);
      if (hit) {
        max = x[j + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    __m512i q[16];
    for (int j = 0; j < 16; ++j) {
      q[j] = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * j)));
      q[j] = _mm512_min_epi32(q[j], _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * j), _mm512_cvtsepi32_epi8(q[j]));
    }
    // The sixteen sums of sixteen quants side by side (|sum| <= 16 * 128: fits in 16 bits).
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].bsums),
                        _mm512_cvtepi32_epi16(Transposed(
                            q, [](__m512i a, __m512i b) { return _mm512_add_epi32(a, b); })));
    y[i].d = 1 / iscale;
  }
}

}  // namespace ggswarm::kernels::avx512
