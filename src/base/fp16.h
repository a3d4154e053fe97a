// IEEE half and bfloat16 conversions, bit-exact with ggml's (round to nearest even; NaN kept
// quiet).
#pragma once

#include <cstdint>
#include <cstring>

namespace ggswarm {

inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Half → float, exact for every half value (subnormals, infinities and NaN included).
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000 | (man << 13));
  if (exp == 0) {
    // Zero or subnormal: man * 2^-24, which float holds exactly.
    float v = static_cast<float>(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return BitsToFloat(sign | ((exp + 112) << 23) | (man << 13));
}

// Float → half with round-to-nearest-even, overflow to infinity.
inline uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7e00;   // NaN
  if (ax >= 0x477ff000) return sign | 0x7c00;  // rounds to ≥ 65520: infinity
  if (ax < 0x38800000) {                       // below 2^-14: subnormal half or zero
    // Let the FPU round: add 0.5 (2^-1) so the subnormal bits land in the mantissa.
    float v = BitsToFloat(ax) + 0.5f;
    return sign | static_cast<uint16_t>(FloatToBits(v) - 0x3f000000);
  }
  const uint32_t mant_odd = (ax >> 13) & 1;
  uint32_t r = ax + 0xc8000fff + mant_odd;  // rebias exponent (-112 << 23) and round
  return sign | static_cast<uint16_t>(r >> 13);
}

inline float Bf16ToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

inline uint16_t FloatToBf16(float f) {
  uint32_t u = FloatToBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace ggswarm
