// Drives the fuzz entry point with thousands of deterministic mutations (flipped bytes,
// truncations, lengths set to extreme values) of valid files: none may crash or hang. Under
// the sanitizer build this also catches out-of-bounds reads and leaks.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "convert/synth.h"
#include "convert/type_plan.h"
#include "mutate.h"
#include "test_util.h"

namespace {

using ggswarm::testing::Mutate;

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
