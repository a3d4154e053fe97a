// AVX-512 VNNI kernels (see avx512_target.h).
#include "kernels/avx512_target.h"
// (first: the target applies to everything below)

#include <cmath>
#include <cstring>
#include <vector>

#include "base/fp16.h"
#include "kernels/kernels_avx512.h"
#include "kernels/target_helpers.h"
#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace ggswarm::kernels::avx512 {
using namespace blocks;  // NOLINT: the block layouts
namespace {

// e^x for sixteen floats, within 2 ulp of expf: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by
// its Taylor polynomial to degree 7 (error below 2^-27), times 2^n by vscalefps, which also
// gives 0 below about -104 and infinity above about 88.7.
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(100.0f)), _mm512_set1_ps(-110.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2, high part
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);     // and the rest
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

void AttendF32(const float* q, int heads, const float* kt, int64_t kt_stride, const float* v,
               int len, int head_dim, float scale, float* out, float softcap) {
  if (softcap > 0) scale /= softcap;
  const int hd = head_dim, nv = hd / 16;
  const int padded = (len + 15) / 16 * 16;
  thread_local std::vector<float> qf, p;
  qf.resize(static_cast<size_t>(heads) * hd);
  p.resize(static_cast<size_t>(heads) * padded);
  for (int i = 0; i < heads * nv; ++i)
    _mm512_storeu_ps(
        qf.data() + 16 * i,
        _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q + 16 * i), _MM_FROUND_TO_NEAREST_INT)));
  // Scores, sixteen positions by up to eight heads at a time: one fma per element of q.
  const __m512 sc = _mm512_set1_ps(scale);
  for (int h0 = 0; h0 < heads; h0 += 8) {
    const int hn = std::min(8, heads - h0);
    for (int j0 = 0; j0 < padded; j0 += 16) {
      __m512 s[8];
      for (int h = 0; h < 8; ++h) s[h] = _mm512_setzero_ps();
      for (int d = 0; d < hd; ++d) {
        const __m512 kv = _mm512_loadu_ps(kt + d * kt_stride + j0);
        for (int h = 0; h < hn; ++h)
          s[h] = _mm512_fmadd_ps(_mm512_set1_ps(qf[(h0 + h) * hd + d]), kv, s[h]);
      }
      for (int h = 0; h < hn; ++h)
        _mm512_storeu_ps(p.data() + static_cast<size_t>(h0 + h) * padded + j0,
                         _mm512_mul_ps(s[h], sc));
    }
  }
  // Softmax per head: the maximum, then e^(s - max) and its sum; past len, zero.
  thread_local std::vector<float> inv;
  inv.resize(heads);
  for (int h = 0; h < heads; ++h) {
    float* ph = p.data() + static_cast<size_t>(h) * padded;
    if (softcap > 0)
      for (int j = 0; j < len; ++j) ph[j] = softcap * std::tanh(ph[j]);
    for (int j = len; j < padded; ++j) ph[j] = -INFINITY;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < padded; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(ph + j));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < padded; j += 16) {
      const __m512 e = Exp(_mm512_sub_ps(_mm512_loadu_ps(ph + j), m));
      _mm512_storeu_ps(ph + j, e);
      sum = _mm512_add_ps(sum, e);
    }
    const float total = _mm512_reduce_add_ps(sum);
    inv[h] = total == 0 ? 0.0f : 1.0f / total;
  }
  // The weighted sum of values, a few heads at a time (at most sixteen accumulators).
  const int hc = std::max(1, 16 / nv);
  for (int h0 = 0; h0 < heads; h0 += hc) {
    const int hn = std::min(hc, heads - h0);
    __m512 acc[16];
    for (int i = 0; i < hn * nv; ++i) acc[i] = _mm512_setzero_ps();
    for (int j = 0; j < len; ++j) {
      const float* vr = v + static_cast<size_t>(j) * hd;
      for (int h = 0; h < hn; ++h) {
        const __m512 w = _mm512_set1_ps(p[static_cast<size_t>(h0 + h) * padded + j]);
        for (int i = 0; i < nv; ++i)
          acc[h * nv + i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 16 * i), acc[h * nv + i]);
      }
    }
    for (int h = 0; h < hn; ++h)
      for (int i = 0; i < nv; ++i)
        _mm512_storeu_ps(out + (h0 + h) * hd + 16 * i,
                         _mm512_mul_ps(acc[h * nv + i], _mm512_set1_ps(inv[h0 + h])));
  }
}

void SiluMul(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 e = Exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
    _mm512_storeu_ps(
        out + i, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
  }
  for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void GeluTableMul(const float* table, const float* g, const float* u, float* out, int64_t n) {
  const __m512 lo = _mm512_set1_ps(-10.0f), hi = _mm512_set1_ps(10.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i), uv = _mm512_loadu_ps(u + i);
    const __m512i idx =
        _mm512_cvtepu16_epi32(_mm512_cvtps_ph(gv, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m512 r = _mm512_mul_ps(_mm512_i32gather_ps(idx, table, 4), uv);
    r = _mm512_mask_mul_ps(r, _mm512_cmp_ps_mask(gv, hi, _CMP_GE_OQ), gv, uv);
    r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(gv, lo, _CMP_NLE_UQ), r);  // NaN kept
    _mm512_storeu_ps(out + i, r);
  }
  for (; i < n; ++i) {
    const float x = g[i];
    out[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i] : table[FloatToHalf(x)] * u[i];
  }
}

void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap) {
  if (softcap > 0) scale /= softcap;  // as ggml: s = softcap · tanh(dot · scale / softcap)
  const int nv = head_dim / 16;       // at most 16 vectors
  // Scores first (they do not depend on the running sums), for every head at once: each
  // key is loaded once for all the heads that share it.
  thread_local std::vector<float> scores, factor;
  thread_local std::vector<uint8_t> rescale;
  thread_local std::vector<uint16_t> acc;
  scores.resize(static_cast<size_t>(heads) * len);
  factor.resize(scores.size());
  rescale.resize(scores.size());
  acc.assign(static_cast<size_t>(heads) * head_dim, 0);
  thread_local std::vector<float> qf;
  qf.resize(static_cast<size_t>(heads) * head_dim);
  for (int i = 0; i < heads * nv; ++i)
    _mm512_storeu_ps(
        qf.data() + 16 * i,
        _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q + 16 * i), _MM_FROUND_TO_NEAREST_INT)));
  // The weights streamed since this layer last ran pushed its keys and values out of the
  // CPU caches: keys are fetched a few positions ahead, values during the scores for later.
  constexpr int kAhead = 16;  // positions
  const int row_lines = (head_dim * 2 + 63) / 64;
  auto fetch = [&](const uint16_t* row) {
    for (int l = 0; l < row_lines; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(row) + 64 * l, _MM_HINT_T0);
  };
  for (int j = 0; j < std::min(len, kAhead); ++j) fetch(k + j * stride);
  for (int j = 0; j < len; ++j) {
    const uint16_t* kr = k + j * stride;
    if (j + kAhead < len) fetch(kr + kAhead * stride);
    fetch(v + j * stride);
    __m512 kv[16];  // the key, converted once for every head
    for (int i = 0; i < nv; ++i)
      kv[i] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kr + 16 * i)));
    for (int h = 0; h < heads; ++h) {
      const float* qh = qf.data() + h * head_dim;
      __m512 d = _mm512_mul_ps(kv[0], _mm512_loadu_ps(qh));
      for (int i = 1; i < nv; ++i) d = _mm512_fmadd_ps(kv[i], _mm512_loadu_ps(qh + 16 * i), d);
      scores[static_cast<size_t>(h) * len + j] = _mm512_reduce_add_ps(d) * scale;
    }
  }
  if (softcap > 0)
    for (float& s : scores) s = softcap * std::tanh(s);
  // The softmax factors, with a running maximum (target_helpers.h).
  thread_local std::vector<float> sum;
  sum.resize(heads);
  simd::RunningMaxFactors(scores.data(), heads, len, factor.data(), rescale.data(), sum.data());
  // The f16 running sums of values: the heads are independent chains, interleaved.
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int j = 0; j < len; ++j) {
    const uint16_t* vr = v + j * stride;
    __m512 vv[16];  // the value, converted once for every head
    for (int i = 0; i < nv; ++i)
      vv[i] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vr + 16 * i)));
    for (int h = 0; h < heads; ++h) {
      const size_t at = static_cast<size_t>(h) * len + j;
      uint16_t* a = acc.data() + static_cast<size_t>(h) * head_dim;
      const __m512 fv = _mm512_set1_ps(factor[at]);
      if (rescale[at]) {
        for (int i = 0; i < nv; ++i) {
          __m256i* ap = reinterpret_cast<__m256i*>(a + 16 * i);
          const __m512 cur = _mm512_cvtph_ps(
              _mm512_cvtps_ph(_mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(ap)), fv),
                              _MM_FROUND_TO_NEAREST_INT));
          _mm256_storeu_si256(
              ap, _mm512_cvtps_ph(_mm512_fmadd_ps(vv[i], one, cur), _MM_FROUND_TO_NEAREST_INT));
        }
      } else {
        for (int i = 0; i < nv; ++i) {
          __m256i* ap = reinterpret_cast<__m256i*>(a + 16 * i);
          _mm256_storeu_si256(
              ap,
              _mm512_cvtps_ph(_mm512_fmadd_ps(vv[i], fv, _mm512_cvtph_ps(_mm256_loadu_si256(ap))),
                              _MM_FROUND_TO_NEAREST_INT));
        }
      }
    }
  }
  for (int h = 0; h < heads; ++h) {
    const __m512 inv = _mm512_set1_ps(sum[h] == 0 ? 0.0f : 1.0f / sum[h]);
    const uint16_t* a = acc.data() + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < nv; ++i)
      _mm512_storeu_ps(
          out + h * head_dim + 16 * i,
          _mm512_mul_ps(
              _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 16 * i))),
              inv));
  }
}

namespace {

// R decoded rows × G groups of sixteen tokens, over the whole row.
template <int R, int G>
void TileRG(const DecodedRows& w, const Panel& p, bool has_min, int r0, int g0, float* out,
            int64_t rs, int64_t ts) {
  const int64_t k = w.k, nkb = w.nkb;
  const int quads = static_cast<int>(k / nkb / 4);
  __m512 facc[R][G];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) facc[r][g] = _mm512_setzero_ps();
  const uint8_t* panel[G];
  const float* sa[G];
  const float* SA[G];
  for (int g = 0; g < G; ++g) {
    panel[g] = p.q.data() + static_cast<size_t>(g0 + g) * k * kPanelTokens;
    sa[g] = p.sa.data() + static_cast<size_t>(g0 + g) * nkb * kPanelTokens;
    SA[g] = p.SA.data() + static_cast<size_t>(g0 + g) * nkb * kPanelTokens;
  }
  const float *sw[R], *mw[R];
  const int32_t* negc[R];
  for (int r = 0; r < R; ++r) {
    sw[r] = w.sw.data() + static_cast<size_t>(r0 + r) * nkb;
    mw[r] = w.mw.data() + static_cast<size_t>(r0 + r) * nkb;
    negc[r] = w.negc.data() + static_cast<size_t>(r0 + r) * nkb;
  }
  for (int64_t b = 0; b < nkb; ++b) {
    __m512i iacc[R][G];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(negc[r][b]);
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) iacc[r][g] = c;
    }
    const int64_t q0 = b * quads;
#pragma GCC unroll 8
    for (int q = 0; q < quads; ++q) {
      __m512i av[G];
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) av[g] = _mm512_loadu_si512(panel[g] + (q0 + q) * 64);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        int32_t wd;
        std::memcpy(&wd, w.At(r0 + r, b) + q * 4, 4);
        const __m512i wb = _mm512_set1_epi32(wd);
#pragma GCC unroll 2
        for (int g = 0; g < G; ++g) iacc[r][g] = _mm512_dpbusd_epi32(iacc[r][g], av[g], wb);
      }
    }
    __m512 sav[G];
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) sav[g] = _mm512_loadu_ps(sa[g] + b * kPanelTokens);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_set1_ps(sw[r][b]);
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g)
        facc[r][g] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[r][g]), _mm512_mul_ps(sav[g], s), facc[r][g]);
    }
    if (has_min) {
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) {
        const __m512 m = _mm512_loadu_ps(SA[g] + b * kPanelTokens);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          facc[r][g] = _mm512_fmadd_ps(m, _mm512_set1_ps(mw[r][b]), facc[r][g]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) {
      const int t0 = (g0 + g) * kPanelTokens;
      const int nt = std::min(kPanelTokens, p.n - t0);
      float* o = out + (r0 + r) * rs + t0 * ts;
      const __mmask16 mask = static_cast<__mmask16>((1u << nt) - 1);
      if (ts == 1) {
        _mm512_mask_storeu_ps(o, mask, facc[r][g]);
      } else {
        const __m512i idx = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(static_cast<int>(ts)));
        _mm512_mask_i32scatter_ps(o, mask, idx, facc[r][g], 4);
      }
    }
}

template <int R>
void TileR(const DecodedRows& w, const Panel& p, bool has_min, int r0, float* out, int64_t rs,
           int64_t ts) {
  int g = 0;
  for (; g + 2 <= p.groups; g += 2) TileRG<R, 2>(w, p, has_min, r0, g, out, rs, ts);
  if (g < p.groups) TileRG<R, 1>(w, p, has_min, r0, g, out, rs, ts);
}

}  // namespace

void Tile(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t rs, int64_t ts) {
  int r = 0;
  for (; r + 4 <= w.rows; r += 4) TileR<4>(w, p, has_min, r, out, rs, ts);
  switch (w.rows - r) {
    case 3:
      TileR<3>(w, p, has_min, r, out, rs, ts);
      break;
    case 2:
      TileR<2>(w, p, has_min, r, out, rs, ts);
      break;
    case 1:
      TileR<1>(w, p, has_min, r, out, rs, ts);
      break;
    default:
      break;
  }
}

}  // namespace ggswarm::kernels::avx512
