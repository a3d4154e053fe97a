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

// Whole small models with each kind of vocabulary (SentencePiece, Gemma's; byte-level BPE
// with merges and a pre-tokenizer) and of architecture (Gemma's windows and soft-caps, Phi's
// fused tensors and rope factors, experts), so that mutations reach the vocabulary reader,
// the tokenizers and every key the hyper-parameters read.
TEST(FuzzReplay, MutatedSynthModelsWithBothVocabularies) {
  for (const auto& [vocab, arch] :
       std::vector<std::pair<const char*, const char*>>{{"spm", "llama"},
                                                        {"llama3", "llama"},
                                                        {"tekken", "mistral3"},
                                                        {"gpt-4o", "phi3"},
                                                        {"gemma", "gemma2"},
                                                        {"gemma", "gemma3"},
                                                        {"qwen2", "qwen3moe"}}) {
    SCOPED_TRACE(std::string(vocab) + " " + arch);
    ggswarm::testing::TempDir dir;
    ggswarm::ModelShape shape = *ggswarm::FindPreset("micro");
    shape.n_vocab = 400;
    shape.n_swa = 8;
    shape.swa_pattern = 2;
    shape.n_expert = 4;
    shape.n_expert_used = 2;
    shape.n_ff_exp = 64;
    ggswarm::SynthOptions o{shape, *ggswarm::ParseTypeMix("Q8_0"), 1, "fuzz", vocab, arch};
    ASSERT_TRUE(ggswarm::Synthesize(o, dir / "m.gguf", false).ok());
    Mutate(ggswarm::testing::ReadBytes(dir / "m.gguf"), 200, 99);
  }
}

// Files whose tensor sizes would wrap around 2^64 in 4- and 8-byte types (F32 [2^31, 2^31],
// F64 [2^61]): the reader must refuse them, or the target's invariants trap.
TEST(FuzzReplay, TensorSizesThatWrap) {
  for (const auto& [dims, type] : std::vector<std::pair<std::vector<uint64_t>, uint32_t>>{
           {{1ull << 31, 1ull << 31}, 0}, {{4, 1ull << 60}, 0}, {{1ull << 61}, 28}}) {
    std::vector<uint8_t> b;
    auto put = [&](uint64_t v, int n) {
      for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put(0x46554747, 4);  // "GGUF"
    put(3, 4);
    put(1, 8);  // one tensor
    put(0, 8);  // no metadata
    put(1, 8);
    b.push_back('a');
    put(dims.size(), 4);
    for (uint64_t d : dims) put(d, 8);
    put(type, 4);
    put(0, 8);  // data offset
    b.resize(b.size() + 256, 0);
    LLVMFuzzerTestOneInput(b.data(), b.size());
    Mutate(b, 50, 7);
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
