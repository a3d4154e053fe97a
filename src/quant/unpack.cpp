#include "quant/unpack.h"

#include <cstring>

#include "base/fp16.h"
#include "quant/blocks.h"

namespace ggswarm::quant {
namespace {

using namespace blocks;
using T = GgmlType;

constexpr QuantTraits kTraits[] = {
    // type, vec_dot_type, sub_block, has_min, integer_dot, max_q
    {T::F32, T::F32, 0, false, false, 0},     {T::F16, T::F16, 0, false, false, 0},
    {T::BF16, T::BF16, 0, false, false, 0},   {T::Q4_0, T::Q8_0, kQK, false, true, 8},
    {T::Q4_1, T::Q8_1, kQK, true, true, 15},  {T::Q5_0, T::Q8_0, kQK, false, true, 16},
    {T::Q5_1, T::Q8_1, kQK, true, true, 31},  {T::Q8_0, T::Q8_0, kQK, false, true, 128},
    {T::Q2_K, T::Q8_K, 16, true, false, 3},   {T::Q3_K, T::Q8_K, 16, false, false, 4},
    {T::Q4_K, T::Q8_K, 32, true, false, 15},  {T::Q5_K, T::Q8_K, 32, true, false, 31},
    {T::Q6_K, T::Q8_K, 16, false, false, 32}, {T::Q8_K, T::Q8_K, 32, false, false, 128},
};

// Q4_0, Q4_1, Q5_0, Q5_1: 32 elements, nibbles j (low) and j + 16 (high) of qs[j], a fifth
// bit from qh.
template <typename B, bool kFive, bool kMin, int kOffset>
void UnpackLegacy(const B* x, int64_t nb, int8_t* q, float* sw, float* mw) {
  for (int64_t b = 0; b < nb; ++b, q += kQK) {
    uint32_t qh = 0;
    if constexpr (kFive) std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
      q[j] = static_cast<int8_t>(((x[b].qs[j] & 0x0F) | h0) - kOffset);
      q[j + kQK / 2] = static_cast<int8_t>(((x[b].qs[j] >> 4) | h1) - kOffset);
    }
    sw[b] = HalfToFloat(x[b].d);
    if constexpr (kMin)
      mw[b] = HalfToFloat(x[b].m);
    else
      mw[b] = 0;
  }
}

void UnpackQ8_0(const Q8_0* x, int64_t nb, int8_t* q, float* sw, float* mw) {
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(q + b * kQK, x[b].qs, kQK);
    sw[b] = HalfToFloat(x[b].d);
    mw[b] = 0;
  }
}

// Q4_K, Q5_K: 8 sub-blocks of 32; sub-block j is nibble (j & 1) of qs[32 (j / 2) …], plus
// bit j of qh[…] for Q5_K; x = d * scale6 * q - dmin * min6.
template <typename B, bool kFive>
void UnpackQ45_K(const B* x, int64_t ns, int8_t* q, float* sw, float* mw) {
  for (int64_t s = 0; s < ns; ++s) {
    const float d = HalfToFloat(x[s].d), dmin = HalfToFloat(x[s].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      ScaleMinK4(j, x[s].scales, &sc, &m);
      int8_t* o = q + s * kQK_K + j * 32;
      const uint8_t* src = x[s].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) {
        int v = (j & 1) ? (src[l] >> 4) : (src[l] & 0xF);
        if constexpr (kFive) v += ((x[s].qh[l] >> j) & 1) << 4;
        o[l] = static_cast<int8_t>(v);
      }
      sw[s * 8 + j] = d * sc;
      mw[s * 8 + j] = -(dmin * m);
    }
  }
}

// Q6_K: 16 sub-blocks of 16; x = (d * scale8) * (q6 - 32).
void UnpackQ6_K(const Q6_K* x, int64_t ns, int8_t* q, float* sw, float* mw) {
  for (int64_t s = 0; s < ns; ++s) {
    const float d = HalfToFloat(x[s].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[s].ql + 64 * h;
      const uint8_t* qh = x[s].qh + 32 * h;
      int8_t* o = q + s * kQK_K + 128 * h;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    for (int j = 0; j < 16; ++j) {
      sw[s * 16 + j] = d * x[s].scales[j];
      mw[s * 16 + j] = 0;
    }
  }
}

// Q2_K: 16 sub-blocks of 16, sub-block j from bits 2 ((j / 2) % 4) of qs[32 (j / 8) +
// 16 (j & 1) …]; x = d * scale4 * q - dmin * min4.
void UnpackQ2_K(const Q2_K* x, int64_t ns, int8_t* q, float* sw, float* mw) {
  for (int64_t s = 0; s < ns; ++s) {
    const float d = HalfToFloat(x[s].d), dmin = HalfToFloat(x[s].dmin);
    for (int j = 0; j < 16; ++j) {
      const uint8_t* src = x[s].qs + 32 * (j / 8) + 16 * (j & 1);
      const int shift = 2 * ((j / 2) % 4);
      int8_t* o = q + s * kQK_K + j * 16;
      for (int l = 0; l < 16; ++l) o[l] = static_cast<int8_t>((src[l] >> shift) & 3);
      const uint8_t sc = x[s].scales[j];
      sw[s * 16 + j] = d * static_cast<float>(sc & 0xF);
      mw[s * 16 + j] = -(dmin * static_cast<float>(sc >> 4));
    }
  }
}

// Q3_K: as Q2_K's quants, less 4 where the hmask bit is clear; x = d * (scale6 - 32) * q.
void UnpackQ3_K(const Q3_K* x, int64_t ns, int8_t* q, float* sw, float* mw) {
  for (int64_t s = 0; s < ns; ++s) {
    const float d = HalfToFloat(x[s].d);
    int8_t scales[16];
    ScalesQ3K(x[s].scales, scales);
    for (int j = 0; j < 16; ++j) {
      const int part = j / 8, shift = 2 * ((j / 2) % 4), half = j & 1;
      const uint8_t* src = x[s].qs + 32 * part + 16 * half;
      const uint8_t* hm = x[s].hmask + 16 * half;
      const uint8_t bit = static_cast<uint8_t>(1 << (4 * part + (j / 2) % 4));
      int8_t* o = q + s * kQK_K + j * 16;
      for (int l = 0; l < 16; ++l)
        o[l] = static_cast<int8_t>(((src[l] >> shift) & 3) - ((hm[l] & bit) ? 0 : 4));
      sw[s * 16 + j] = d * static_cast<float>(scales[j]);
      mw[s * 16 + j] = 0;
    }
  }
}

// Q8_K: x = d * q, d an f32 for the whole super-block.
void UnpackQ8_K(const Q8_K* x, int64_t ns, int8_t* q, float* sw, float* mw) {
  for (int64_t s = 0; s < ns; ++s) {
    std::memcpy(q + s * kQK_K, x[s].qs, kQK_K);
    for (int j = 0; j < kQK_K / 32; ++j) {
      sw[s * 8 + j] = x[s].d;
      mw[s * 8 + j] = 0;
    }
  }
}

}  // namespace

const QuantTraits* FindQuantTraits(GgmlType t) {
  for (const QuantTraits& q : kTraits)
    if (q.type == t) return &q;
  return nullptr;
}

void UnpackRow(GgmlType w, const uint8_t* row, int64_t k, int8_t* q, float* sw, float* mw) {
  switch (w) {
    case T::Q4_0:
      return UnpackLegacy<Q4_0, false, false, 8>(reinterpret_cast<const Q4_0*>(row), k / kQK, q, sw,
                                                 mw);
    case T::Q4_1:
      return UnpackLegacy<Q4_1, false, true, 0>(reinterpret_cast<const Q4_1*>(row), k / kQK, q, sw,
                                                mw);
    case T::Q5_0:
      return UnpackLegacy<Q5_0, true, false, 16>(reinterpret_cast<const Q5_0*>(row), k / kQK, q, sw,
                                                 mw);
    case T::Q5_1:
      return UnpackLegacy<Q5_1, true, true, 0>(reinterpret_cast<const Q5_1*>(row), k / kQK, q, sw,
                                               mw);
    case T::Q8_0:
      return UnpackQ8_0(reinterpret_cast<const Q8_0*>(row), k / kQK, q, sw, mw);
    case T::Q2_K:
      return UnpackQ2_K(reinterpret_cast<const Q2_K*>(row), k / kQK_K, q, sw, mw);
    case T::Q3_K:
      return UnpackQ3_K(reinterpret_cast<const Q3_K*>(row), k / kQK_K, q, sw, mw);
    case T::Q4_K:
      return UnpackQ45_K<Q4_K, false>(reinterpret_cast<const Q4_K*>(row), k / kQK_K, q, sw, mw);
    case T::Q5_K:
      return UnpackQ45_K<Q5_K, true>(reinterpret_cast<const Q5_K*>(row), k / kQK_K, q, sw, mw);
    case T::Q6_K:
      return UnpackQ6_K(reinterpret_cast<const Q6_K*>(row), k / kQK_K, q, sw, mw);
    case T::Q8_K:
      return UnpackQ8_K(reinterpret_cast<const Q8_K*>(row), k / kQK_K, q, sw, mw);
    default:
      return;  // float types are not unpacked (sub_block 0)
  }
}

}  // namespace ggswarm::quant
