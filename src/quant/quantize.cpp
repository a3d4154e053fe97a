#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "quant/blocks.h"
#include "quant/dequantize.h"

namespace ggswarm {
namespace {

using namespace blocks;

int Nearest(float x) { return static_cast<int>(std::lrintf(x)); }

// The element of largest magnitude, with its sign.
float SignedAbsMax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void QuantQ8_0(const float* x, Q8_0* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(Nearest(x[j] * id));
  }
}

// Q4_0 / Q5_0: the largest-magnitude element maps to -2^(bits-1) exactly.
template <int kBits, class Block>
void QuantSymmetric(const float* x, Block* y, uint64_t nb) {
  constexpr int kHalf = 1 << (kBits - 1), kMax = (1 << kBits) - 1;
  for (uint64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = SignedAbsMax(x, kQK) / -kHalf;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(kMax, static_cast<int>(x[j] * id + kHalf + 0.5f));
      const int q1 = std::min(kMax, static_cast<int>(x[j + kQK / 2] * id + kHalf + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    if constexpr (kBits == 5) std::memcpy(y[i].qh, &qh, 4);
  }
}

// Q4_1 / Q5_1: x = q * d + min over [min, max].
template <int kBits, class Block>
void QuantAffine(const float* x, Block* y, uint64_t nb) {
  constexpr int kMax = (1 << kBits) - 1;
  for (uint64_t i = 0; i < nb; ++i, x += kQK) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < kQK; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    const float d = (hi - lo) / kMax;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = FloatToHalf(d);
    y[i].m = FloatToHalf(lo);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(kMax, static_cast<int>((x[j] - lo) * id + 0.5f));
      const int q1 = std::min(kMax, static_cast<int>((x[j + kQK / 2] - lo) * id + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    if constexpr (kBits == 5) std::memcpy(y[i].qh, &qh, 4);
  }
}

void QuantQ8_K(const float* x, Q8_K* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += kQK_K) {
    const float max = SignedAbsMax(x, kQK_K);
    std::memset(&y[i], 0, sizeof(Q8_K));
    if (max == 0) continue;
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::min(127, Nearest(iscale * x[j])));
      y[i].bsums[j / 16] = static_cast<int16_t>(y[i].bsums[j / 16] + y[i].qs[j]);
    }
    y[i].d = 1 / iscale;
  }
}

// Affine sub-block fit for Q2_K/Q4_K/Q5_K: x ≈ scale * q - min with q in [0, qmax], min ≥ 0.
struct SubFit {
  float scale, min;
};
SubFit FitAffine(const float* x, int n, int qmax) {
  float lo = 0, hi = x[0];  // lo ≤ 0 so that min stays non-negative, as the format requires
  for (int j = 0; j < n; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
  return {(hi - lo) / qmax, -lo};
}

// Quantizes the sub-block scales and mins of one super-block to `bits` unsigned bits and
// returns the super-scales (d, dmin).
void QuantizeScales(const SubFit* fit, int n, int bits, uint8_t* sc, uint8_t* mn, float* d,
                    float* dmin) {
  const int qmax = (1 << bits) - 1;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < n; ++j) max_scale = std::max(max_scale, fit[j].scale);
  for (int j = 0; j < n; ++j) max_min = std::max(max_min, fit[j].min);
  *d = HalfToFloat(FloatToHalf(max_scale / qmax));
  *dmin = HalfToFloat(FloatToHalf(max_min / qmax));
  for (int j = 0; j < n; ++j) {
    sc[j] = static_cast<uint8_t>(*d ? std::clamp(Nearest(fit[j].scale / *d), 0, qmax) : 0);
    mn[j] = static_cast<uint8_t>(*dmin ? std::clamp(Nearest(fit[j].min / *dmin), 0, qmax) : 0);
  }
}

int QuantAffineValue(float x, float scale, float min, int qmax) {
  return scale ? std::clamp(Nearest((x + min) / scale), 0, qmax) : 0;
}

void PackScalesK4(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[12]) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = sc[j];
      out[j + 4] = mn[j];
    } else {
      out[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      out[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      out[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
}

// Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and mins.
template <int kBits, class Block>
void QuantK4Family(const float* x, Block* y, uint64_t nb) {
  constexpr int kMax = (1 << kBits) - 1;
  for (uint64_t i = 0; i < nb; ++i, x += kQK_K) {
    SubFit fit[8];
    for (int j = 0; j < 8; ++j) fit[j] = FitAffine(x + 32 * j, 32, kMax);
    uint8_t sc[8], mn[8];
    float d, dmin;
    QuantizeScales(fit, 8, 6, sc, mn, &d, &dmin);
    y[i].d = FloatToHalf(d);
    y[i].dmin = FloatToHalf(dmin);
    PackScalesK4(sc, mn, y[i].scales);
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    if constexpr (kBits == 5) std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int e = 0; e < kQK_K; ++e) {
      const int j = e / 32, chunk = e / 64, l = e % 32;
      const int q = QuantAffineValue(x[e], d * sc[j], dmin * mn[j], kMax);
      y[i].qs[32 * chunk + l] |= static_cast<uint8_t>((q & 0xF) << (j % 2 ? 4 : 0));
      if constexpr (kBits == 5) y[i].qh[l] |= static_cast<uint8_t>(((q >> 4) & 1) << j);
    }
  }
}

void QuantQ2_K(const float* x, Q2_K* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += kQK_K) {
    SubFit fit[16];
    for (int j = 0; j < 16; ++j) fit[j] = FitAffine(x + 16 * j, 16, 3);
    uint8_t sc[16], mn[16];
    float d, dmin;
    QuantizeScales(fit, 16, 4, sc, mn, &d, &dmin);
    y[i].d = FloatToHalf(d);
    y[i].dmin = FloatToHalf(dmin);
    for (int j = 0; j < 16; ++j) y[i].scales[j] = static_cast<uint8_t>(sc[j] | (mn[j] << 4));
    std::memset(y[i].qs, 0, sizeof(y[i].qs));
    for (int e = 0; e < kQK_K; ++e) {
      const int j = e / 16, n = e / 128, r = e % 32, shift = 2 * ((e % 128) / 32);
      const int q = QuantAffineValue(x[e], d * sc[j], dmin * mn[j], 3);
      y[i].qs[32 * n + r] |= static_cast<uint8_t>(q << shift);
    }
  }
}

void QuantQ3_K(const float* x, Q3_K* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += kQK_K) {
    float scale[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scale[j] = SignedAbsMax(x + 16 * j, 16) / -4;  // value range [-4, 3]
      if (std::fabs(scale[j]) > amax) amax = std::fabs(scale[j]), max_scale = scale[j];
    }
    std::memset(&y[i], 0, sizeof(Q3_K));
    if (max_scale == 0) continue;
    const float iscale = -32 / max_scale;
    const float d = HalfToFloat(FloatToHalf(1 / iscale));
    y[i].d = FloatToHalf(d);
    int sc[16];
    for (int j = 0; j < 16; ++j) {
      sc[j] = std::clamp(Nearest(iscale * scale[j]), -32, 31);
      const int biased = sc[j] + 32, low = biased & 0xF, high = biased >> 4;
      y[i].scales[j % 8] |= static_cast<uint8_t>(low << (j < 8 ? 0 : 4));
      y[i].scales[8 + j % 4] |= static_cast<uint8_t>(high << (2 * (j / 4)));
    }
    for (int e = 0; e < kQK_K; ++e) {
      const float s = d * sc[e / 16];
      const int v = s ? std::clamp(Nearest(x[e] / s), -4, 3) : 0;
      const int stored = v + 4, n = e / 128, r = e % 32, j = (e % 128) / 32;
      y[i].qs[32 * n + r] |= static_cast<uint8_t>((stored & 3) << (2 * j));
      if (stored >> 2) y[i].hmask[r] |= static_cast<uint8_t>(1 << (4 * n + j));
    }
  }
}

void QuantQ6_K(const float* x, Q6_K* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, x += kQK_K) {
    float scale[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scale[j] = SignedAbsMax(x + 16 * j, 16) / -32;  // value range [-32, 31]
      if (std::fabs(scale[j]) > amax) amax = std::fabs(scale[j]), max_scale = scale[j];
    }
    std::memset(&y[i], 0, sizeof(Q6_K));
    if (max_scale == 0) continue;
    const float iscale = -128 / max_scale;
    const float d = HalfToFloat(FloatToHalf(1 / iscale));
    y[i].d = FloatToHalf(d);
    for (int j = 0; j < 16; ++j) {
      y[i].scales[j] = static_cast<int8_t>(std::clamp(Nearest(iscale * scale[j]), -128, 127));
    }
    for (int e = 0; e < kQK_K; ++e) {
      const float s = d * y[i].scales[e / 16];
      const int q = (s ? std::clamp(Nearest(x[e] / s), -32, 31) : 0) + 32;
      const int n = e / 128, k = (e % 128) / 32, l = e % 32;
      uint8_t* ql = y[i].ql + 64 * n + (k % 2 ? 32 : 0) + l;
      *ql |= static_cast<uint8_t>((q & 0xF) << (k >= 2 ? 4 : 0));
      y[i].qh[32 * n + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
    }
  }
}

}  // namespace

Status Quantize(GgmlType type, const float* src, void* dst, uint64_t n) {
  const TypeTraits& tr = Traits(type);
  if (!tr.quantizable) return Status::Unsupported(std::string("quantization to ") + tr.name);
  GGSWARM_RETURN_IF_ERROR(CheckWholeBlocks(type, n));
  const uint64_t nb = n / tr.block_size;
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      break;
    case GgmlType::F16:
      for (uint64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = FloatToHalf(src[i]);
      break;
    case GgmlType::BF16:
      for (uint64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = FloatToBf16(src[i]);
      break;
    case GgmlType::Q4_0:
      QuantSymmetric<4>(src, static_cast<Q4_0*>(dst), nb);
      break;
    case GgmlType::Q5_0:
      QuantSymmetric<5>(src, static_cast<Q5_0*>(dst), nb);
      break;
    case GgmlType::Q4_1:
      QuantAffine<4>(src, static_cast<Q4_1*>(dst), nb);
      break;
    case GgmlType::Q5_1:
      QuantAffine<5>(src, static_cast<Q5_1*>(dst), nb);
      break;
    case GgmlType::Q8_0:
      QuantQ8_0(src, static_cast<Q8_0*>(dst), nb);
      break;
    case GgmlType::Q2_K:
      QuantQ2_K(src, static_cast<Q2_K*>(dst), nb);
      break;
    case GgmlType::Q3_K:
      QuantQ3_K(src, static_cast<Q3_K*>(dst), nb);
      break;
    case GgmlType::Q4_K:
      QuantK4Family<4>(src, static_cast<Q4_K*>(dst), nb);
      break;
    case GgmlType::Q5_K:
      QuantK4Family<5>(src, static_cast<Q5_K*>(dst), nb);
      break;
    case GgmlType::Q6_K:
      QuantQ6_K(src, static_cast<Q6_K*>(dst), nb);
      break;
    case GgmlType::Q8_K:
      QuantQ8_K(src, static_cast<Q8_K*>(dst), nb);
      break;
    default:
      return Status::Unsupported(std::string("quantization to ") + tr.name);
  }
  return Status::Ok();
}

}  // namespace ggswarm
