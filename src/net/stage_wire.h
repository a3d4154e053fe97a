// Hidden states and logits on the wire (proto/stage.proto): little-endian f32, or f16 for
// half the bytes. This machine is little-endian (x86-64), so f32 is a plain copy.
#pragma once

#include <cmath>
#include <cstring>
#include <string>

#include "base/fp16.h"
#include "stage.pb.h"

namespace ggswarm::net {

inline size_t HiddenBytes(stage::v1::HiddenFormat f) { return f == stage::v1::F16 ? 2 : 4; }

inline std::string ToWire(const float* x, size_t n, stage::v1::HiddenFormat f) {
  std::string b(n * HiddenBytes(f), '\0');
  if (f == stage::v1::F16) {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = FloatToHalf(x[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  } else {
    std::memcpy(b.data(), x, n * 4);
  }
  return b;
}

// `b` holds exactly n values (the caller checked its size).
inline void FromWire(const std::string& b, stage::v1::HiddenFormat f, float* x, size_t n) {
  if (f == stage::v1::F16) {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      x[i] = HalfToFloat(h);
    }
  } else {
    std::memcpy(x, b.data(), n * 4);
  }
}

// Whether the f32 values in `b` are all finite: logits a stage sends are checked with it, as
// a NaN would otherwise be sampled as some token.
inline bool AllFinite(const std::string& b) {
  for (size_t i = 0; i + 4 <= b.size(); i += 4) {
    float v;
    std::memcpy(&v, b.data() + i, 4);
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace ggswarm::net
