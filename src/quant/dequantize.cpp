#include "quant/dequantize.h"

#include <cstring>

#include "base/fp16.h"
#include "quant/blocks.h"
#include "quant/unpack.h"

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

// Block types through the one unpacker, a block (or super-block) at a time: x = scale * q
// (+ min), in f32 without contraction, as ggml computes each type.
void DeqBlocks(GgmlType type, const quant::QuantTraits& qt, const uint8_t* src, float* y,
               uint64_t n) {
  const TypeTraits& tr = Traits(type);
  const int64_t step = tr.block_size;  // 32 or 256
  const int sub = qt.sub_block;
  int8_t q[kQK_K];
  float sw[kQK_K / 16], mw[kQK_K / 16];
  for (uint64_t i = 0; i < n; i += step, src += tr.type_size, y += step) {
    quant::UnpackRow(type, src, step, q, sw, mw);
    for (int64_t b = 0; b < step / sub; ++b) {
      const float s = sw[b], m = mw[b];
      const int8_t* qb = q + b * sub;
      float* yb = y + b * sub;
      if (qt.has_min) {
        for (int l = 0; l < sub; ++l) yb[l] = s * static_cast<float>(qb[l]) + m;
      } else {
        for (int l = 0; l < sub; ++l) yb[l] = s * static_cast<float>(qb[l]);
      }
    }
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
    default: {
      const quant::QuantTraits* qt = quant::FindQuantTraits(type);
      if (!qt || qt->sub_block == 0)
        return Status::Unsupported(std::string("dequantization of type ") + tr.name);
      DeqBlocks(type, *qt, static_cast<const uint8_t*>(src), dst, n);
    }
  }
  return Status::Ok();
}

}  // namespace ggswarm
