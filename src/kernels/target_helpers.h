// Small helpers for the files compiled for AVX2 or AVX-512 (rowdot_avx2.cpp,
// rowdot_avx512.cpp, attention_avx2.cpp, kernels_avx512.cpp), included after their target
// pragma. They are static: each file gets its own copy, compiled for its own instruction
// set (one shared inline copy could be the AVX-512 one, run on a CPU without AVX-512).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace ggswarm::kernels::simd {

static inline float H(uint16_t h) { return _cvtsh_ss(h); }

static inline float Hsum128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float Hsum256(__m256 v) {
  return Hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

// The softmax of llama.cpp's CPU flash attention, one pass with a running maximum, over
// `heads` rows of `len` scores: position by position, whether the sum of values so far is
// rescaled (rescale = 1, factor = exp(m_old - m_new); the value then goes in as it is) or
// the value weighted (rescale = 0, factor = exp(s - m)); and each head's softmax sum.
static inline void RunningMaxFactors(const float* scores, int heads, int len, float* factor,
                                     uint8_t* rescale, float* sum) {
  for (int h = 0; h < heads; ++h) {
    const float* sc = scores + static_cast<size_t>(h) * len;
    float* f = factor + static_cast<size_t>(h) * len;
    uint8_t* re = rescale + static_cast<size_t>(h) * len;
    float m = -INFINITY, sm = 0;
    for (int j = 0; j < len; ++j) {
      float ms = 1.0f, vs = 1.0f;
      if (sc[j] > m) {
        ms = std::exp(m - sc[j]);
        m = sc[j];
        re[j] = 1;
        f[j] = ms;
      } else {
        vs = std::exp(sc[j] - m);
        re[j] = 0;
        f[j] = vs;
      }
      sm = sm * ms + vs;
    }
    sum[h] = sm;
  }
}

}  // namespace ggswarm::kernels::simd
