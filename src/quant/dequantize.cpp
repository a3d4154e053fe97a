#include "quant/dequantize.h"

#include <cstring>

#include "base/fp16.h"
#include "quant/blocks.h"

namespace ggswarm {
namespace {

using namespace blocks;

void DeqF32(const void* src, float* y, uint64_t n) { std::memcpy(y, src, n * 4); }

void DeqF16(const void* src, float* y, uint64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (uint64_t i = 0; i < n; ++i) y[i] = HalfToFloat(x[i]);
}

void DeqBF16(const void* src, float* y, uint64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (uint64_t i = 0; i < n; ++i) y[i] = Bf16ToFloat(x[i]);
}

void DeqQ4_0(const Q4_0* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DeqQ4_1(const Q4_1* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(x[i].d), m = HalfToFloat(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void DeqQ5_0(const Q5_0* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(x[i].d);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      y[j] = static_cast<float>(((x[i].qs[j] & 0x0F) | hi0) - 16) * d;
      y[j + kQK / 2] = static_cast<float>(((x[i].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void DeqQ5_1(const Q5_1* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(x[i].d), m = HalfToFloat(x[i].m);
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      y[j] = static_cast<float>((x[i].qs[j] & 0x0F) | hi0) * d + m;
      y[j + kQK / 2] = static_cast<float>((x[i].qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void DeqQ8_0(const Q8_0* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void DeqQ2_K(const Q2_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(x[i].d), dmin = HalfToFloat(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int n = 0; n < kQK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) {
            *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
          }
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

// Unpacks the sixteen 6-bit Q3_K scales (stored biased by 32) into signed values.
void UnpackQ3KScales(const uint8_t packed[12], int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

void DeqQ3_K(const Q3_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    const float d_all = HalfToFloat(x[i].d);
    int8_t scales[16];
    UnpackQ3KScales(x[i].scales, scales);
    const uint8_t* q = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < kQK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * static_cast<float>(scales[is++]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
        shift += 2;
        m <<= 1;
      }
      q += 32;
    }
  }
}

void DeqQ4_K(const Q4_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(x[i].d), dmin = HalfToFloat(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      ScaleMinK4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void DeqQ5_K(const Q5_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(x[i].d), dmin = HalfToFloat(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      ScaleMinK4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      }
    }
  }
}

void DeqQ6_K(const Q6_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void DeqQ8_K(const Q8_K* x, float* y, uint64_t nb) {
  for (uint64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < kQK_K; ++j) *y++ = x[i].d * x[i].qs[j];
  }
}

}  // namespace

Status CheckWholeBlocks(GgmlType type, uint64_t n) {
  const TypeTraits& tr = Traits(type);
  if (n % tr.block_size == 0) return Status::Ok();
  return Status::InvalidArgument(std::to_string(n) + " elements is not a whole number of " +
                                 tr.name + " blocks of " + std::to_string(tr.block_size));
}

Status Dequantize(GgmlType type, const void* src, float* dst, uint64_t n) {
  const TypeTraits& tr = Traits(type);
  if (!tr.dequantizable) {
    return Status::Unsupported(std::string("dequantization of type ") + tr.name);
  }
  GGSWARM_RETURN_IF_ERROR(CheckWholeBlocks(type, n));
  const uint64_t nb = n / tr.block_size;
  switch (type) {
    case GgmlType::F32:
      DeqF32(src, dst, n);
      break;
    case GgmlType::F16:
      DeqF16(src, dst, n);
      break;
    case GgmlType::BF16:
      DeqBF16(src, dst, n);
      break;
    case GgmlType::Q4_0:
      DeqQ4_0(static_cast<const Q4_0*>(src), dst, nb);
      break;
    case GgmlType::Q4_1:
      DeqQ4_1(static_cast<const Q4_1*>(src), dst, nb);
      break;
    case GgmlType::Q5_0:
      DeqQ5_0(static_cast<const Q5_0*>(src), dst, nb);
      break;
    case GgmlType::Q5_1:
      DeqQ5_1(static_cast<const Q5_1*>(src), dst, nb);
      break;
    case GgmlType::Q8_0:
      DeqQ8_0(static_cast<const Q8_0*>(src), dst, nb);
      break;
    case GgmlType::Q2_K:
      DeqQ2_K(static_cast<const Q2_K*>(src), dst, nb);
      break;
    case GgmlType::Q3_K:
      DeqQ3_K(static_cast<const Q3_K*>(src), dst, nb);
      break;
    case GgmlType::Q4_K:
      DeqQ4_K(static_cast<const Q4_K*>(src), dst, nb);
      break;
    case GgmlType::Q5_K:
      DeqQ5_K(static_cast<const Q5_K*>(src), dst, nb);
      break;
    case GgmlType::Q6_K:
      DeqQ6_K(static_cast<const Q6_K*>(src), dst, nb);
      break;
    case GgmlType::Q8_K:
      DeqQ8_K(static_cast<const Q8_K*>(src), dst, nb);
      break;
    default:
      return Status::Unsupported(std::string("dequantization of type ") + tr.name);
  }
  return Status::Ok();
}

}  // namespace ggswarm
