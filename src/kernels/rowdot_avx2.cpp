// AVX2 row dots (Haswell, Zen and later without AVX-512 VNNI): one activation row, in the
// Q8_0 / Q8_K blocks QuantizeRow makes, against many weight rows, in the same four-stream
// loop as the AVX-512 kernels (rowdot_rows.h). Without vpdpbusd the byte products go
// through vpmaddubsw (unsigned × signed bytes, pairs summed in 16 bits) and vpmaddwd.
#include "kernels/avx2_target.h"
// (first: the target applies to everything below)

#include <cstring>

#include "kernels/kernels_avx2.h"
#include "kernels/rowdot_rows.h"
#include "kernels/target_helpers.h"
#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace ggswarm::kernels::avx2 {
using namespace blocks;  // NOLINT: the block layouts
namespace {

using simd::H;
using simd::Hsum128;
using simd::Hsum256;

// --- One block against T tokens ----------------------------------------------------------
//
// Each weight block (super-block for the K-quants) is decoded once and multiplied with the
// same block of T tokens' activations (y[t]): T = 1 in generation, up to 4 in prompts.

// Q8_0: acc[t] += the block's dot with token t's. vpmaddubsw wants its first operand
// unsigned, so |w| times a with w's sign moved onto a. (|w| <= 128 and |a| <= 127: a pair
// sums to at most 32,512, inside 16 bits.)
// The activations' scales come as floats (da[t], PrepareRowDot), each multiplied in from
// memory, and the weight's once per block for all the tokens.
template <int T>
inline void Q8_0Block(const Q8_0& x, const Q8_0* const* y, const float* const* da, __m256* acc) {
  const __m256 dw = _mm256_set1_ps(H(x.d));
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  const __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->qs));
    const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(v, w));
    const __m256i s = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
    acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_broadcast_ss(da[t])), dw,
                             acc[t]);
  }
}

// Q4_K: the eight 32-element sub-blocks' integer dots times their 6-bit scales, summed in
// 32 bits (acc[t]); the mins against the activations' sub-block sums (accm[t]).
template <int T>
inline void Q4_KBlock(const Q4_K& x, const Q8_K* const* y, __m256* acc, __m128* accm) {
  uint32_t u[3];
  std::memcpy(u, x.scales, 12);
  // Scales 0-3 and 4-7, mins 0-3 and 4-7, as bytes.
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f, m_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  // The scales as 16-bit pairs: sub-block j's in 32-bit lane j.
  const __m256i sc = _mm256_cvtepu8_epi32(
      _mm_cvtsi64_si128(static_cast<int64_t>(sc_lo | static_cast<uint64_t>(sc_hi) << 32)));
  const __m256i sc16 = _mm256_or_si256(sc, _mm256_slli_epi32(sc, 16));
  const __m128i m16 = _mm_cvtepu8_epi16(
      _mm_cvtsi64_si128(static_cast<int64_t>(m_lo | static_cast<uint64_t>(m_hi) << 32)));
  const __m256i nib = _mm256_set1_epi8(0x0F);
  __m256i isum[T];
  for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {  // 64 elements: sub-block 2c (low nibbles), 2c + 1 (high)
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * c));
    const __m256i lo = _mm256_and_si256(q, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nib);
    const __m256i slo = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(2 * c));
    const __m256i shi = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(2 * c + 1));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      // Pairs of products in 16 bits (15 · 127 · 2 fits), then times the scale.
      const int8_t* aq = y[t]->qs + 64 * c;
      const __m256i plo =
          _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq)));
      const __m256i phi =
          _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32)));
      isum[t] = _mm256_add_epi32(
          isum[t], _mm256_add_epi32(_mm256_madd_epi16(plo, slo), _mm256_madd_epi16(phi, shi)));
    }
  }
  const float d = H(x.d), dmin = H(x.dmin);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    // The sub-blocks' activation sums: pairs of the sixteen 16-element sums.
    const __m128i sums =
        _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t]->bsums)),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t]->bsums + 8)));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * y[t]->d), acc[t]);
    accm[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(m16, sums)), _mm_set1_ps(dmin * y[t]->d),
                           accm[t]);
  }
}

// Q6_K: per 128-element half, quants 0-31, 32-63, 64-95 and 96-127 from the low and high
// nibbles of ql and the bit pairs of qh; each 16-element sub-block has its own 8-bit scale.
// The quants are stored + 32: that part is undone with the activations' sub-block sums.
template <int T>
inline void Q6_KBlock(const Q6_K& x, const Q8_K* const* y, __m256* acc) {
  const __m256i nib = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(0x03);
  // The sixteen scales as 16-bit values; sub-blocks 2s and 2s + 1 fill the two halves of a
  // vector of pairs.
  const __m256i sc16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
  alignas(32) int16_t s[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(s), sc16);
  __m256i isum[T];
  for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(ql0, nib),
                        _mm256_slli_epi16(_mm256_and_si256(qh, three), 4)),
        _mm256_or_si256(_mm256_and_si256(ql1, nib),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), nib),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), nib),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4))};
    for (int j = 0; j < 4; ++j) {
      // Pairs of products in 16 bits (63 · 127 · 2 fits), then times the scales of
      // sub-blocks 8h + 2j (lanes 0-7) and 8h + 2j + 1 (lanes 8-15).
      const int sb = 8 * h + 2 * j;
      const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(s[sb + 1]), _mm_set1_epi16(s[sb]));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m256i p = _mm256_maddubs_epi16(
            q[j],
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->qs + 128 * h + 32 * j)));
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, scale));
      }
    }
  }
  const float d = H(x.d);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    // Σ_j 32 · scale_j · (sum of sub-block j's activations).
    const __m256i corr =
        _mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t]->bsums)));
    const __m256i v = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(corr, 5));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(d * y[t]->d), acc[t]);
  }
}

// --- One token, four rows side by side (generation; the loop of rowdot_rows.h) -------------

// Q8_0: two blocks per step (their sums in two accumulators), an odd block by the scalar
// reference.
struct Q8_0Kernel {
  static constexpr int kStepBytes = 2 * sizeof(Q8_0);
  struct Acc {
    __m256 a[2];
  };
  const Q8_0* a;
  const float* d;  // a's scales as floats
  int64_t nb, steps;
  Q8_0Kernel(const RowDotAct& act, int64_t k)
      : a(static_cast<const Q8_0*>(act.act)), d(act.d.data()), nb(k / kQK), steps(k / kQK / 2) {}

  Acc Zero() const { return {{_mm256_setzero_ps(), _mm256_setzero_ps()}}; }
  void Step(const uint8_t* row, int64_t j, Acc& acc) const {
    const auto* x = reinterpret_cast<const Q8_0*>(row) + 2 * j;
    const Q8_0* y[2] = {a + 2 * j, a + 2 * j + 1};
    const float* da[2] = {d + 2 * j, d + 2 * j + 1};
    Q8_0Block<1>(x[0], &y[0], &da[0], &acc.a[0]);
    Q8_0Block<1>(x[1], &y[1], &da[1], &acc.a[1]);
  }
  float Finish(const uint8_t* row, const Acc& acc) const {
    float s = Hsum256(_mm256_add_ps(acc.a[0], acc.a[1]));
    const int64_t i = 2 * steps;
    if (i < nb)
      s += VecDotBlocks(GgmlType::Q8_0, reinterpret_cast<const Q8_0*>(row) + i, a + i,
                        (nb - i) * kQK);
    return s;
  }
};

// Q4_0 on PrepareRowDot's layout for AVX2 (see there): four blocks per step. Two blocks'
// low nibbles share one register, their high nibbles another, against the activations
// interleaved to match; the nibbles (0..15) are vpmaddubsw's unsigned operand as they are,
// and the stored offset, Σ -8 x per block, is added as scale × corr. Blocks past the last
// whole step by the scalar reference.
// A Q4_0 row's result: the two sums, and the blocks from `done` on by the scalar reference.
inline float Q4_0Finish(const uint8_t* row, __m256 acc, __m128 accc, const RowDotAct& act,
                        int64_t nb, int64_t done) {
  float s = Hsum256(acc) + Hsum128(accc);
  if (done < nb)
    s += VecDotBlocks(GgmlType::Q4_0, reinterpret_cast<const Q4_0*>(row) + done,
                      static_cast<const Q8_0*>(act.act) + done, (nb - done) * kQK);
  return s;
}

// Four blocks x[0 … 3] (blocks i … i + 3 of the row) against T tokens' prepared rows:
// acc[t] += the quants' part, accc[t] += the offset's.
template <int T>
inline void Q4_0Quad(const Q4_0* x, int64_t i, const RowDotAct* const* act, __m256* acc,
                     __m128* accc) {
  // The weights' scales, gathered into one word and converted at once.
  uint16_t h[4];
  for (int b = 0; b < 4; ++b) std::memcpy(&h[b], &x[b].d, 2);
  const uint64_t packed = h[0] | static_cast<uint64_t>(h[1]) << 16 |
                          static_cast<uint64_t>(h[2]) << 32 | static_cast<uint64_t>(h[3]) << 48;
  const __m128 dw = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(packed)));
  // Two blocks' nibbles per register: low ones (elements 0-15 of each), high ones (16-31).
  const __m256i nib = _mm256_set1_epi8(0x0F);
  __m256i lo[2], hi[2];
  for (int p = 0; p < 2; ++p) {
    const __m256i both = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[2 * p].qs))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[2 * p + 1].qs)), 1);
    lo[p] = _mm256_and_si256(both, nib);
    hi[p] = _mm256_and_si256(_mm256_srli_epi16(both, 4), nib);
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const int8_t* q = act[t]->q.data() + i * kQK;
    const __m128 s4 = _mm_mul_ps(dw, _mm_loadu_ps(act[t]->d.data() + i));
    const __m256 s8 = _mm256_castps128_ps256(s4);
    for (int p = 0; p < 2; ++p) {
      // Each 16-bit sum at most 2 · 2 · 15 · 128 = 7,680: the two halves add in 16 bits.
      // Lanes 0-3 are block 2p's, 4-7 block 2p + 1's.
      const __m256i prod = _mm256_add_epi16(
          _mm256_maddubs_epi16(lo[p],
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * p))),
          _mm256_maddubs_epi16(
              hi[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * p + 32))));
      const __m256 sp = _mm256_permutevar8x32_ps(
          s8,
          _mm256_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p, 2 * p, 2 * p, 2 * p));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(prod, _mm256_set1_epi16(1))),
                               sp, acc[t]);
    }
    accc[t] = _mm_fmadd_ps(
        _mm_cvtepi32_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(act[t]->corr.data() + i))),
        s4, accc[t]);
  }
}

// Q4_0 on PrepareRowDot's layout for AVX2 (see there): four blocks per step. Two blocks'
// low nibbles share one register, their high nibbles another, against the activations
// interleaved to match; the nibbles (0..15) are vpmaddubsw's unsigned operand as they are,
// and the stored offset, Σ -8 x per block, is added as scale × corr. Blocks past the last
// whole step by the scalar reference.
struct Q4_0Kernel {
  static constexpr int kStepBytes = 4 * sizeof(Q4_0);
  struct Acc {
    __m256 a;
    __m128 c;
  };
  const RowDotAct* act;
  int64_t nb, steps;
  Q4_0Kernel(const RowDotAct& a, int64_t k) : act(&a), nb(k / kQK), steps(k / kQK / 4) {}

  Acc Zero() const { return {_mm256_setzero_ps(), _mm_setzero_ps()}; }
  void Step(const uint8_t* row, int64_t j, Acc& acc) const {
    Q4_0Quad<1>(reinterpret_cast<const Q4_0*>(row) + 4 * j, 4 * j, &act, &acc.a, &acc.c);
  }
  float Finish(const uint8_t* row, const Acc& acc) const {
    return Q4_0Finish(row, acc.a, acc.c, *act, nb, 4 * steps);
  }
};

struct Q4_KKernel {
  static constexpr int kStepBytes = sizeof(Q4_K);
  struct Acc {
    __m256 acc;
    __m128 accm;
  };
  const Q8_K* a;
  int64_t steps;
  Q4_KKernel(const RowDotAct& act, int64_t k)
      : a(static_cast<const Q8_K*>(act.act)), steps(k / kQK_K) {}

  Acc Zero() const { return {_mm256_setzero_ps(), _mm_setzero_ps()}; }
  void Step(const uint8_t* row, int64_t i, Acc& acc) const {
    const Q8_K* y = a + i;
    Q4_KBlock<1>(reinterpret_cast<const Q4_K*>(row)[i], &y, &acc.acc, &acc.accm);
  }
  float Finish(const uint8_t*, const Acc& acc) const {
    return Hsum256(acc.acc) - Hsum128(acc.accm);
  }
};

struct Q6_KKernel {
  static constexpr int kStepBytes = sizeof(Q6_K);
  struct Acc {
    __m256 acc;
  };
  const Q8_K* a;
  int64_t steps;
  Q6_KKernel(const RowDotAct& act, int64_t k)
      : a(static_cast<const Q8_K*>(act.act)), steps(k / kQK_K) {}

  Acc Zero() const { return {_mm256_setzero_ps()}; }
  void Step(const uint8_t* row, int64_t i, Acc& acc) const {
    const Q8_K* y = a + i;
    Q6_KBlock<1>(reinterpret_cast<const Q6_K*>(row)[i], &y, &acc.acc);
  }
  float Finish(const uint8_t*, const Acc& acc) const { return Hsum256(acc.acc); }
};

// --- Several tokens at once, one row at a time (prompts) -----------------------------------
//
// The rows of a call are in L1 by then (model cuts prompt calls to fit), so there is nothing
// to stream side by side.

// block(x, i, y, acc, accm) for every block x (the i-th) of every row, y the T tokens'
// blocks that go with x; then the row's results, Σ acc[t] - Σ accm[t].
template <typename Block, typename Act, int T, typename F>
void RowsTokens(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts, int64_t nb,
                float* out, int64_t ts, const F& block) {
  const Act* a[T];
  for (int t = 0; t < T; ++t) a[t] = static_cast<const Act*>(acts[t].act);
  for (int64_t r = 0; r < nrows; ++r) {
    const Block* row = reinterpret_cast<const Block*>(rows + r * rb);
    __m256 acc[T];
    __m128 accm[T];
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm256_setzero_ps();
      accm[t] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < nb; ++i) {
      const Act* y[T];
      for (int t = 0; t < T; ++t) y[t] = a[t] + i;
      block(row[i], i, y, acc, accm);
    }
    for (int t = 0; t < T; ++t) out[t * ts + r] = Hsum256(acc[t]) - Hsum128(accm[t]);
  }
}

template <int T>
void Q4_0Tokens(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts, int64_t k,
                float* out, int64_t ts) {
  const int64_t nb = k / kQK, done = nb / 4 * 4;
  const RowDotAct* act[T];
  for (int t = 0; t < T; ++t) act[t] = acts + t;
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* row = rows + r * rb;
    __m256 acc[T];
    __m128 accc[T];
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm256_setzero_ps();
      accc[t] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < done; i += 4)
      Q4_0Quad<T>(reinterpret_cast<const Q4_0*>(row) + i, i, act, acc, accc);
    for (int t = 0; t < T; ++t)
      out[t * ts + r] = Q4_0Finish(row, acc[t], accc[t], acts[t], nb, done);
  }
}

// Q8_0 as Q8_0Kernel sums one token: even and odd blocks in two accumulators, added before
// the horizontal sum, and a last odd block by VecDotBlocks, so that each token gets the bits
// it gets alone.
template <int T>
void Q8_0Tokens(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts, int64_t k,
                float* out, int64_t ts) {
  const int64_t nb = k / kQK, pairs = nb / 2;
  for (int64_t r = 0; r < nrows; ++r) {
    const Q8_0* x = reinterpret_cast<const Q8_0*>(rows + r * rb);
    __m256 even[T], odd[T];
    for (int t = 0; t < T; ++t) even[t] = odd[t] = _mm256_setzero_ps();
    for (int64_t j = 0; j < pairs; ++j) {
      const Q8_0* y[2][T];
      const float* da[2][T];
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < 2; ++h) {
          y[h][t] = static_cast<const Q8_0*>(acts[t].act) + 2 * j + h;
          da[h][t] = acts[t].d.data() + 2 * j + h;
        }
      Q8_0Block<T>(x[2 * j], y[0], da[0], even);
      Q8_0Block<T>(x[2 * j + 1], y[1], da[1], odd);
    }
    for (int t = 0; t < T; ++t) {
      float s = Hsum256(_mm256_add_ps(even[t], odd[t]));
      if (2 * pairs < nb)
        s +=
            VecDotBlocks(GgmlType::Q8_0, x + 2 * pairs,
                         static_cast<const Q8_0*>(acts[t].act) + 2 * pairs, (nb - 2 * pairs) * kQK);
      out[t * ts + r] = s;
    }
  }
}

template <int T>
void TokensOf(GgmlType w, const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct* acts,
              int64_t k, float* out, int64_t ts) {
  switch (w) {
    case GgmlType::Q4_0:
      return Q4_0Tokens<T>(rows, rb, nrows, acts, k, out, ts);
    case GgmlType::Q8_0:
      return Q8_0Tokens<T>(rows, rb, nrows, acts, k, out, ts);
    case GgmlType::Q4_K:
      return RowsTokens<Q4_K, Q8_K, T>(rows, rb, nrows, acts, k / kQK_K, out, ts,
                                       [](const Q4_K& x, int64_t, const Q8_K* const* y, __m256* acc,
                                          __m128* accm) { Q4_KBlock<T>(x, y, acc, accm); });
    default:
      return RowsTokens<Q6_K, Q8_K, T>(rows, rb, nrows, acts, k / kQK_K, out, ts,
                                       [](const Q6_K& x, int64_t, const Q8_K* const* y, __m256* acc,
                                          __m128*) { Q6_KBlock<T>(x, y, acc); });
  }
}

}  // namespace

void DotQ8_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(Q8_0Kernel(act, k), rows, rb, nrows, y, ys);
}

void DotQ4_0(const uint8_t* rows, uint64_t rb, int64_t nrows, const RowDotAct& act, int64_t k,
             float* y, int64_t ys) {
  rowdot::Rows(Q4_0Kernel(act, k), rows, rb, nrows, y, ys);
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
  rowdot::InGroupsOf<4>(n, [&](auto group, int t) {
    TokensOf<decltype(group)::value>(w, rows, rb, nrows, acts + t, k, y + t * ts, ts);
  });
}

uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams) {
  const uint64_t part = n / streams / 128 * 128;
  __m256i acc[8];
  for (int s = 0; s < 8; ++s) acc[s] = _mm256_setzero_si256();
  for (uint64_t i = 0; i < part; i += 128)
    for (int s = 0; s < streams; ++s) {
      const uint8_t* q = p + s * part + i;
      _mm_prefetch(reinterpret_cast<const char*>(q) + rowdot::kPrefetch, _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(q) + rowdot::kPrefetch + 64, _MM_HINT_T1);
      for (int o = 0; o < 128; o += 32)
        acc[s] =
            _mm256_xor_si256(acc[s], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + o)));
    }
  __m256i x = acc[0];
  for (int s = 1; s < 8; ++s) x = _mm256_xor_si256(x, acc[s]);
  alignas(32) uint64_t w[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), x);
  return w[0] ^ w[1] ^ w[2] ^ w[3];
}

}  // namespace ggswarm::kernels::avx2
