// Drives the fuzz entry point with thousands of deterministic mutations (flipped bytes,
// truncations, lengths set to extreme values) of valid files: none may crash or hang. Under
// the sanitizer build this also catches out-of-bounds reads and leaks.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "convert/synth.h"
#include "convert/type_plan.h"
#include "test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Mutate(std::vector<uint8_t> seed, int iterations, uint32_t rng_seed) {
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

TEST(FuzzReplay, MutatedSharedModelHeaders) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  uint32_t s = 1;
  for (const std::string& m : ggswarm::testing::SharedModels()) {
    auto bytes = ggswarm::testing::ReadBytes(m);
    bytes.resize(std::min<size_t>(bytes.size(), 64 << 10));  // the header and a little data
    Mutate(bytes, 300, s++);
  }
}

// A whole small model with a byte-level BPE vocabulary (merges, pre-tokenizer), so that
// mutations reach the vocabulary reader and the tokenizers.
TEST(FuzzReplay, MutatedSynthModelsWithBothVocabularies) {
  for (const char* vocab : {"spm", "llama3", "tekken"}) {
    ggswarm::testing::TempDir dir;
    ggswarm::ModelShape shape = *ggswarm::FindPreset("micro");
    shape.n_vocab = 400;
    ggswarm::SynthOptions o{shape, *ggswarm::ParseTypeMix("Q8_0"), 1, "fuzz", vocab};
    ASSERT_TRUE(ggswarm::Synthesize(o, dir / "m.gguf", false).ok());
    Mutate(ggswarm::testing::ReadBytes(dir / "m.gguf"), 200, 99);
  }
}

TEST(FuzzReplay, EmptyAndTinyInputs) {
  for (size_t n = 0; n < 64; ++n) {
    std::vector<uint8_t> b(n, 0xff);
    LLVMFuzzerTestOneInput(b.data(), b.size());
  }
  const char* json = "{\"schema\":\"ggswarm.manifest\",\"schema_version\":1,\"fragments\":[{}]}";
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(json), std::strlen(json));
}

}  // namespace
