// Deterministic mutations (flipped bytes, truncations, lengths set to extreme values) of a
// valid input, each handed to the fuzz entry point the test binary links.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace ggswarm::testing {

inline void Mutate(std::vector<uint8_t> seed, int iterations, uint32_t rng_seed) {
  std::mt19937 rng(rng_seed);
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> b = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 4) {
        case 0:
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          b.resize(at);
          break;
        case 2:  // an extreme 8-byte length or count
          for (size_t k = at; k < std::min(b.size(), at + 8); ++k) b[k] = (rng() % 2) ? 0xff : 0x7f;
          break;
        case 3:
          b[at] = static_cast<uint8_t>(rng());
          break;
      }
    }
    LLVMFuzzerTestOneInput(b.data(), b.size());
  }
}

}  // namespace ggswarm::testing
