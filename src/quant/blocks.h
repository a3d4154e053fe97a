// Block layouts of the quantized types, byte for byte as ggml stores them (little-endian).
// `d`, `m`, `dmin` are IEEE halves unless stated; `qs` holds the quants, low nibble first.
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace ggswarm::blocks {

struct Q4_0 {  // 18 bytes: x[j] = (nibble - 8) * d; nibbles j (low) and j+16 (high) share qs[j]
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct Q4_1 {  // 20 bytes: x = nibble * d + m
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
struct Q5_0 {  // 22 bytes: 5th bit of element j is bit j of qh (little-endian u32); x = (q - 16) *
               // d
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct Q5_1 {  // 24 bytes: x = q * d + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct Q8_0 {  // 34 bytes: x = q * d
  uint16_t d;
  int8_t qs[kQK];
};
// K-quants: a 256-element super-block of 16 or 8 sub-blocks, each with a quantized scale.
struct Q2_K {  // 84 bytes: scales[i] = scale (low 4 bits) | min (high 4 bits) of 16 elements
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];  // 2-bit quants, four per byte
  uint16_t d, dmin;
};
struct Q3_K {  // 110 bytes: x = d * (scale6 - 32) * (q2 - (hmask bit ? 0 : 4))
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];  // sixteen 6-bit scales, packed
  uint16_t d;
};
struct Q4_K {  // 144 bytes: x = d * scale6 * q4 - dmin * min6, 8 sub-blocks of 32
  uint16_t d, dmin;
  uint8_t scales[12];  // eight 6-bit scales and eight 6-bit mins, packed
  uint8_t qs[kQK_K / 2];
};
struct Q5_K {  // 176 bytes: as Q4_K with a fifth bit per element in qh
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct Q6_K {             // 210 bytes: x = d * scale8 * (q6 - 32), 16 sub-blocks of 16
  uint8_t ql[kQK_K / 2];  // low 4 bits
  uint8_t qh[kQK_K / 4];  // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
struct Q8_K {  // 292 bytes: x = q * d (d is f32); bsums = sums of each 16 quants
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(Q4_0) == 18 && sizeof(Q4_1) == 20 && sizeof(Q5_0) == 22);
static_assert(sizeof(Q5_1) == 24 && sizeof(Q8_0) == 34 && sizeof(Q2_K) == 84);
static_assert(sizeof(Q3_K) == 110 && sizeof(Q4_K) == 144 && sizeof(Q5_K) == 176);
static_assert(sizeof(Q6_K) == 210 && sizeof(Q8_K) == 292);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
inline void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The sixteen 6-bit Q3_K scales (stored biased by 32), as signed values.
inline void ScalesQ3K(const uint8_t packed[12], int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

}  // namespace ggswarm::blocks
