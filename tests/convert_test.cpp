// synth (deterministic random models) and quantize (re-typing a model).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "convert/quantize_model.h"
#include "convert/synth.h"
#include "gguf/gguf_file.h"
#include "quant/dequantize.h"
#include "test_util.h"

namespace ggswarm {
namespace {

using ggswarm::testing::ReadBytes;
using ggswarm::testing::TempDir;

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
  TempDir tmp;
  SynthOptions o{*FindPreset("tiny"), *ParseTypeMix("Q4_K_M"), 11, "x"};
  ASSERT_TRUE(Synthesize(o, tmp / "a.gguf", false).ok());
  ASSERT_TRUE(Synthesize(o, tmp / "b.gguf", false).ok());
  o.seed = 12;
  ASSERT_TRUE(Synthesize(o, tmp / "c.gguf", false).ok());
  EXPECT_EQ(ReadBytes(tmp / "a.gguf"), ReadBytes(tmp / "b.gguf"));
  EXPECT_NE(ReadBytes(tmp / "a.gguf"), ReadBytes(tmp / "c.gguf"));
}

TEST(Synth, WritesALlamaModelWithTheRequestedShapeAndVocabulary) {
  TempDir tmp;
  // Mistral-Small's attention geometry (heads of 128: q is 4096 wide, not 5120), shrunk in
  // depth, feed-forward and vocabulary so that the test stays small.
  ModelShape s = *FindPreset("mistral-small-24b");
  s.n_layer = 1;
  s.n_ff = 256;
  s.n_vocab = 1000;
  SynthOptions o{s, *ParseTypeMix("Q4_K_M"), 1, "small"};
  auto r = Synthesize(o, tmp / "s.gguf", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto f = gguf::GgufFile::Open(tmp / "s.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->Architecture(), "llama");
  EXPECT_EQ(f->GetInt("llama.attention.key_length"), 128);
  EXPECT_EQ(f->GetInt("llama.attention.value_length"), 128);
  EXPECT_EQ(f->GetInt("llama.attention.head_count_kv"), 8);
  EXPECT_EQ(f->GetInt("general.file_type"), 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->shape, (std::vector<uint64_t>{5120, 4096}));
  EXPECT_EQ(f->FindTensor("blk.0.attn_k.weight")->shape, (std::vector<uint64_t>{5120, 1024}));
  EXPECT_EQ(f->FindTensor("blk.0.attn_output.weight")->shape, (std::vector<uint64_t>{4096, 5120}));
  EXPECT_EQ(f->FindTensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
  EXPECT_EQ(f->FindTensor("blk.0.attn_q.weight")->type, GgmlType::Q4_K);
  EXPECT_EQ(f->FindTensor("output.weight")->type, GgmlType::Q6_K);
  EXPECT_EQ(f->FindTensor("blk.0.attn_v.weight")->type, GgmlType::Q6_K);  // first eighth
  auto tokens = f->Find("tokenizer.ggml.tokens")->Strings();
  ASSERT_EQ(tokens.size(), 1000u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[3 + 0x41], "<0x41>");
  std::set<std::string_view> unique(tokens.begin(), tokens.end());
  EXPECT_EQ(unique.size(), tokens.size());
  // Every weight dequantizes to finite values.
  for (const auto& t : f->tensors) {
    std::vector<float> row(t.shape[0]);
    ASSERT_TRUE(Dequantize(t.type, f->TensorBytes(t).data(), row.data(), t.shape[0]).ok());
    for (float v : row) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }
}

TEST(Synth, RejectsInconsistentShapes) {
  TempDir tmp;
  ModelShape s = *FindPreset("tiny");
  s.n_head_kv = 3;  // 4 heads do not group into 3
  SynthOptions o{s, *ParseTypeMix("F16"), 1, "x"};
  auto r = Synthesize(o, tmp / "x.gguf", false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("n_head_kv"), std::string::npos);
  // Two rope scalings at once: one would silently overwrite the other's keys.
  o.shape = *FindPreset("tiny");
  o.shape.yarn_factor = 4;
  o.shape.linear_factor = 8;
  r = Synthesize(o, tmp / "y.gguf", false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("one rope scaling"), std::string::npos)
      << r.status().ToString();
}

TEST(TypePlan, FallsBackWhereRowsDoNotFit) {
  const TypeMix q4k = *ParseTypeMix("Q4_K");
  std::string note;
  EXPECT_EQ(PlanTensorType(q4k, "blk.0.ffn_down.weight", 172, 2, 5, &note), GgmlType::F16);
  EXPECT_NE(note.find("172"), std::string::npos);
  note.clear();
  EXPECT_EQ(PlanTensorType(q4k, "blk.0.attn_q.weight", 64, 2, 5, &note), GgmlType::Q5_0);
  EXPECT_NE(note.find("Q5_0"), std::string::npos);
  note.clear();
  EXPECT_EQ(PlanTensorType(q4k, "blk.0.attn_q.weight", 4096, 2, 5, &note), GgmlType::Q4_K);
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(PlanTensorType(q4k, "output_norm.weight", 4096, 1, 5, &note), GgmlType::F32);
  // llama.cpp's Q4_K_M: Q6_K for attn_v/ffn_down in the first and last eighth of 32 layers
  // and every third layer between.
  const TypeMix km = *ParseTypeMix("q4_k_m");
  int more = 0;
  for (int l = 0; l < 32; ++l) {
    more += PlanTensorType(km, "blk." + std::to_string(l) + ".attn_v.weight", 4096, 2, 32,
                           nullptr) == GgmlType::Q6_K;
  }
  EXPECT_EQ(more, 16);
}

TEST(Quantize, ReTypesAModelAndKeepsNormsF32) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  TempDir tmp;
  const std::string in = ggswarm::testing::SharedDir() + "/models/stories260K-f32.gguf";
  auto r = QuantizeModel(in, tmp / "q.gguf", *ParseTypeMix("Q8_0"), false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // ffn_down has rows of 172: not a whole number of 32-blocks, so it falls back (and says so).
  ASSERT_EQ(r->notes.size(), 5u);
  EXPECT_NE(r->notes[0].find("ffn_down"), std::string::npos);
  auto src = gguf::GgufFile::Open(in);
  auto q = gguf::GgufFile::Open(tmp / "q.gguf");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->metadata.size(), src->metadata.size());
  EXPECT_EQ(q->GetInt("general.file_type"), 7);
  for (size_t i = 0; i < q->tensors.size(); ++i) {
    const auto& t = q->tensors[i];
    SCOPED_TRACE(t.name);
    if (t.shape.size() == 1) {
      EXPECT_EQ(t.type, GgmlType::F32);
    } else {
      EXPECT_EQ(t.type, t.shape[0] % 32 ? GgmlType::F16 : GgmlType::Q8_0);
    }
    // Values agree with the F32 original within one Q8_0 step of each block.
    std::vector<float> a(t.n_elements), b(t.n_elements);
    ASSERT_TRUE(Dequantize(src->tensors[i].type, src->TensorBytes(src->tensors[i]).data(), a.data(),
                           t.n_elements)
                    .ok());
    ASSERT_TRUE(Dequantize(t.type, q->TensorBytes(t).data(), b.data(), t.n_elements).ok());
    for (uint64_t k = 0; k < t.n_elements; k += 32) {
      float amax = 0;
      for (uint64_t j = k; j < std::min(k + 32, t.n_elements); ++j)
        amax = std::max(amax, std::fabs(a[j]));
      for (uint64_t j = k; j < std::min(k + 32, t.n_elements); ++j) {
        ASSERT_LE(std::fabs(a[j] - b[j]), amax / 127 * 1.001 + 1e-7);
      }
    }
  }
}

}  // namespace
}  // namespace ggswarm
