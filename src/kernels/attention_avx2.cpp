// AVX2 attention over the f16 cache, for CPUs without AVX-512 (compiled for AVX2, FMA and
// F16C): the same computation as AttendF16Reference, llama.cpp's CPU flash attention, with
// eight lanes. See kernels.h.
#include "kernels/avx2_target.h"
// (first: the target applies to everything below)

#include <cmath>
#include <vector>

#include "kernels/kernels_avx2.h"
#include "kernels/target_helpers.h"

namespace ggswarm::kernels::avx2 {
namespace {

inline __m256 LoadHalf8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256 RoundHalf8(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

}  // namespace

void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap) {
  if (softcap > 0) scale /= softcap;  // as ggml: s = softcap · tanh(dot · scale / softcap)
  const int nv = head_dim / 8;        // at most 32 vectors
  // Scores first, for every head at once: each key is converted once for all the heads
  // that share it. q is rounded to f16, as llama.cpp rounds it.
  thread_local std::vector<float> qf, scores, factor;
  thread_local std::vector<uint8_t> rescale;
  qf.resize(static_cast<size_t>(heads) * head_dim);
  for (int i = 0; i < heads * nv; ++i)
    _mm256_storeu_ps(qf.data() + 8 * i, RoundHalf8(_mm256_loadu_ps(q + 8 * i)));
  scores.resize(static_cast<size_t>(heads) * len);
  factor.resize(scores.size());
  rescale.resize(scores.size());
  for (int j = 0; j < len; ++j) {
    const uint16_t* kr = k + j * stride;
    __m256 kv[32];
    for (int i = 0; i < nv; ++i) kv[i] = LoadHalf8(kr + 8 * i);
    for (int h = 0; h < heads; ++h) {
      const float* qh = qf.data() + h * head_dim;
      __m256 d = _mm256_mul_ps(kv[0], _mm256_loadu_ps(qh));
      for (int i = 1; i < nv; ++i) d = _mm256_fmadd_ps(kv[i], _mm256_loadu_ps(qh + 8 * i), d);
      scores[static_cast<size_t>(h) * len + j] = simd::Hsum256(d) * scale;
    }
  }
  if (softcap > 0)
    for (float& s : scores) s = softcap * std::tanh(s);
  // The softmax factors, with a running maximum (target_helpers.h).
  thread_local std::vector<float> sum;
  sum.resize(heads);
  simd::RunningMaxFactors(scores.data(), heads, len, factor.data(), rescale.data(), sum.data());
  // The running sums of values, in f16 (rounded after every position); a head's sum is
  // kept as f32 values that are always exactly f16.
  thread_local std::vector<float> acc;
  acc.assign(static_cast<size_t>(heads) * head_dim, 0.0f);
  for (int j = 0; j < len; ++j) {
    const uint16_t* vr = v + j * stride;
    __m256 vv[32];
    for (int i = 0; i < nv; ++i) vv[i] = LoadHalf8(vr + 8 * i);
    for (int h = 0; h < heads; ++h) {
      const size_t at = static_cast<size_t>(h) * len + j;
      float* a = acc.data() + static_cast<size_t>(h) * head_dim;
      const __m256 fv = _mm256_set1_ps(factor[at]);
      for (int i = 0; i < nv; ++i) {
        const __m256 cur = _mm256_loadu_ps(a + 8 * i);
        const __m256 next = rescale[at] ? _mm256_add_ps(vv[i], RoundHalf8(_mm256_mul_ps(cur, fv)))
                                        : _mm256_fmadd_ps(vv[i], fv, cur);
        _mm256_storeu_ps(a + 8 * i, RoundHalf8(next));
      }
    }
  }
  for (int h = 0; h < heads; ++h) {
    const __m256 inv = _mm256_set1_ps(sum[h] == 0 ? 0.0f : 1.0f / sum[h]);
    const float* a = acc.data() + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < nv; ++i)
      _mm256_storeu_ps(out + h * head_dim + 8 * i, _mm256_mul_ps(_mm256_loadu_ps(a + 8 * i), inv));
  }
}

}  // namespace ggswarm::kernels::avx2
