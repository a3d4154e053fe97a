#include "quant/vec_dot.h"

#include <cmath>
#include <cstring>

#include "base/fp16.h"
#include "quant/blocks.h"
#include "quant/dequantize.h"
#include "quant/unpack.h"

namespace ggswarm {
using namespace blocks;  // NOLINT: the block layouts, used throughout this file
namespace {

// Round half to even, as _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's nearest_int do.
inline int RoundEven(float x) { return static_cast<int>(std::nearbyint(x)); }

void QuantizeQ8_0(const float* x, Q8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = amax != 0 ? 127.f / amax : 0.f;
    y[i].d = FloatToHalf(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(RoundEven(x[j] * id));
  }
}

void QuantizeQ8_1(const float* x, BlockQ8_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = amax != 0 ? 127.f / amax : 0.f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(RoundEven(x[j] * id));
      sum += y[i].qs[j];
    }
    y[i].d = FloatToHalf(d);
    y[i].s = FloatToHalf(d * static_cast<float>(sum));
  }
}

void QuantizeQ8_K(const float* x, Q8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(Q8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j)
      y[i].qs[j] = static_cast<int8_t>(std::min(127, RoundEven(iscale * x[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int k = 0; k < 16; ++k) sum += y[i].qs[j * 16 + k];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// Σ (q_j - offset) · y_j over one block of 32 quants, where q_j is the low nibble of qs[j]
// for j < 16 and the high nibble of qs[j - 16], plus 16 when bit j of `qh` is set (Q5_0,
// Q5_1; 0 for Q4_0, Q4_1). Exact in integers.
int NibbleBlockDot(const uint8_t* qs, uint32_t qh, int offset, const int8_t* y) {
  int sumi = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
    sumi += (((qs[j] & 0x0F) | h0) - offset) * y[j];
    sumi += (((qs[j] >> 4) | h1) - offset) * y[j + kQK / 2];
  }
  return sumi;
}

uint32_t HighBits(const uint8_t (&qh)[4]) {
  uint32_t v;
  std::memcpy(&v, qh, 4);  // little-endian u32, as ggml stores it
  return v;
}

}  // namespace

GgmlType VecDotType(GgmlType w) {
  const quant::QuantTraits* t = quant::FindQuantTraits(w);
  return t ? t->vec_dot_type : GgmlType::Q8_K;
}

uint64_t ActivationBytes(GgmlType vt, int64_t n) {
  if (vt == GgmlType::Q8_1) return n / kQK * sizeof(BlockQ8_1);
  return RowBytes(vt, n);
}

void QuantizeActivation(GgmlType vt, const float* x, void* out, int64_t n) {
  switch (vt) {
    case GgmlType::F32:
      std::memcpy(out, x, n * sizeof(float));
      break;
    case GgmlType::F16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = FloatToHalf(x[i]);
      break;
    }
    case GgmlType::BF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = FloatToBf16(x[i]);
      break;
    }
    case GgmlType::Q8_0:
      QuantizeQ8_0(x, static_cast<Q8_0*>(out), n / kQK);
      break;
    case GgmlType::Q8_1:
      QuantizeQ8_1(x, static_cast<BlockQ8_1*>(out), n / kQK);
      break;
    default:
      QuantizeQ8_K(x, static_cast<Q8_K*>(out), n / kQK_K);
      break;
  }
}

void ExpandActivation(GgmlType vt, const void* a, float* out, int64_t n) {
  if (vt == GgmlType::Q8_1) {
    const auto* b = static_cast<const BlockQ8_1*>(a);
    for (int64_t i = 0; i < n / kQK; ++i) {
      const float d = HalfToFloat(b[i].d);
      for (int j = 0; j < kQK; ++j) out[i * kQK + j] = b[i].qs[j] * d;
    }
    return;
  }
  (void)Dequantize(vt, a, out, static_cast<uint64_t>(n));
}

bool HasIntegerDot(GgmlType w) {
  const quant::QuantTraits* t = quant::FindQuantTraits(w);
  return t && t->integer_dot;
}

float VecDotBlocks(GgmlType w, const void* wrow, const void* arow, int64_t n) {
  const int64_t nb = n / kQK;
  float sumf = 0;
  switch (w) {
    case GgmlType::Q4_0: {
      const auto* x = static_cast<const Q4_0*>(wrow);
      const auto* y = static_cast<const Q8_0*>(arow);
      for (int64_t i = 0; i < nb; ++i)
        sumf +=
            NibbleBlockDot(x[i].qs, 0, 8, y[i].qs) * (HalfToFloat(x[i].d) * HalfToFloat(y[i].d));
      break;
    }
    case GgmlType::Q4_1: {
      const auto* x = static_cast<const Q4_1*>(wrow);
      const auto* y = static_cast<const BlockQ8_1*>(arow);
      for (int64_t i = 0; i < nb; ++i)
        sumf +=
            (HalfToFloat(x[i].d) * HalfToFloat(y[i].d)) * NibbleBlockDot(x[i].qs, 0, 0, y[i].qs) +
            HalfToFloat(x[i].m) * HalfToFloat(y[i].s);
      break;
    }
    case GgmlType::Q5_0: {
      const auto* x = static_cast<const Q5_0*>(wrow);
      const auto* y = static_cast<const Q8_0*>(arow);
      for (int64_t i = 0; i < nb; ++i)
        sumf += NibbleBlockDot(x[i].qs, HighBits(x[i].qh), 16, y[i].qs) *
                (HalfToFloat(x[i].d) * HalfToFloat(y[i].d));
      break;
    }
    case GgmlType::Q5_1: {
      const auto* x = static_cast<const Q5_1*>(wrow);
      const auto* y = static_cast<const BlockQ8_1*>(arow);
      for (int64_t i = 0; i < nb; ++i)
        sumf += (HalfToFloat(x[i].d) * HalfToFloat(y[i].d)) *
                    NibbleBlockDot(x[i].qs, HighBits(x[i].qh), 0, y[i].qs) +
                HalfToFloat(x[i].m) * HalfToFloat(y[i].s);
      break;
    }
    case GgmlType::Q8_0: {
      const auto* x = static_cast<const Q8_0*>(wrow);
      const auto* y = static_cast<const Q8_0*>(arow);
      for (int64_t i = 0; i < nb; ++i) {
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (HalfToFloat(x[i].d) * HalfToFloat(y[i].d));
      }
      break;
    }
    default:
      break;
  }
  return sumf;
}

float DotF32(const float* a, const float* b, int64_t n) {
  // Sixteen partial sums, as a 512-bit register holds: the compiler vectorizes this.
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
  float s = 0;
  for (int k = 0; k < 16; ++k) s += acc[k];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace ggswarm
