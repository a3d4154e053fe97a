// The forward pass against llama.cpp: last-prompt-position logits and greedy continuations
// from ../shared/golden (made by ../shared/reference/llamacpp-ref, which runs llama.cpp's
// CPU backend with its default flash attention), from the GGUF file and from fragments.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <span>

#include "arch_cases.h"
#include "convert/quantize_model.h"
#include "convert/synth.h"
#include "convert/type_plan.h"
#include "fragments/fragment_source.h"
#include "fragments/fragments.h"
#include "gguf/gguf_writer.h"
#include "kernels/kernels.h"
#include "model/ops.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "scoped_isa.h"
#include "test_util.h"

namespace ggswarm::runtime {
namespace {

using ggswarm::testing::ScopedIsa;

using testing::SharedDir;
using testing::TempDir;

nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Tolerance on a logit, as a fraction of the range of the golden logits.
//  - llama.cpp keeps the attention's weighted sum of values in f16, rounded after every
//    position (relative step 2^-11 ≈ 4.9e-4). We do the same, but our f32 sums run in another
//    order, so a value close to an f16 rounding boundary can round the other way; one such
//    flip moves a logit by a few 1e-4 of its size. With F32 and Q8_0 weights few values are
//    near a boundary: 1e-4 of the range holds (we measure 3e-5 and 1e-7).
//  - F16 weights add a rounding of every activation to f16 before each product (as ggml
//    does), and with it more boundaries: 1e-3 of the range (we measure 4e-4).
double Tolerance(const std::string& model) {
  return model.find("f16") != std::string::npos ? 1e-3 : 1e-4;
}

struct Golden {
  std::string model, name;
  nlohmann::json run;
  std::vector<float> logits;
};

std::vector<Golden> Goldens() {
  std::vector<Golden> g;
  for (const char* m : {"llama-2-tiny-random", "stories260K-f32", "stories260K-f16",
                        "stories260K-q8_0", "llama2xs-tinystories-280K-f32",
                        "llama2xs-tinystories-280K-f16", "llama2xs-tinystories-280K-q8_0"}) {
    for (const char* p : {"p1", "p2"}) {
      const std::string base = SharedDir() + "/golden/" + m + "." + p;
      g.push_back({m, std::string(m) + "." + p, LoadJson(base + ".json"),
                   LoadJson(base + ".logits.json").get<std::vector<float>>()});
    }
  }
  return g;
}

// Walks llama.cpp's greedy continuation `want` from the prompt's `logits`, feeding its tokens
// (teacher forcing), and expects our argmax to be its token at every step where our top two
// logits are further apart than `tol`. Returns how many steps were so compared.
int TeacherForced(Engine& e, std::vector<float> logits, const std::vector<int32_t>& want,
                  double tol) {
  int compared = 0;
  for (size_t step = 0; step < want.size(); ++step) {
    std::vector<float> sorted = logits;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    if (sorted[0] - sorted[1] > tol) {
      EXPECT_EQ(Argmax(logits), want[step]) << "step " << step;
      ++compared;
    }
    if (step + 1 < want.size()) {
      EXPECT_TRUE(e.Eval({&want[step], 1}, &logits).ok());
    }
  }
  return compared;
}

// Checks the prompt logits, then walks llama.cpp's greedy continuation feeding its tokens
// (teacher forcing) and asserts that our argmax is its token at every step where our top
// two logits are further apart than the tolerance. Returns the prompt logits.
std::vector<float> CheckAgainstGolden(const std::string& path, const Golden& g) {
  auto e = Engine::Open(path, {.threads = 2, .n_ctx = 512});
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (!e.ok()) return {};
  const std::vector<int32_t> prompt = g.run["prompt_tokens"];
  EXPECT_EQ((*e)->tokenizer().Encode(g.run["prompt"].get<std::string>()), prompt);
  std::vector<float> logits;
  EXPECT_TRUE((*e)->Eval(prompt, &logits).ok());
  EXPECT_EQ(logits.size(), g.logits.size());
  if (logits.size() != g.logits.size()) return {};
  const auto [lo, hi] = std::minmax_element(g.logits.begin(), g.logits.end());
  const double tol = Tolerance(g.model) * (*hi - *lo);
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    worst = std::max(worst, std::fabs(double(logits[i]) - g.logits[i]));
  EXPECT_LE(worst, tol) << "largest logit difference from llama.cpp";
  const std::vector<float> prompt_logits = logits;

  const std::vector<int32_t> want = g.run["generated_tokens"];
  EXPECT_EQ(want.size(), 64u);
  EXPECT_GE(TeacherForced(**e, logits, want, tol), 60) << "too few steps were decisive to compare";
  return prompt_logits;
}

TEST(InferenceGolden, FromGgufAndFromFragmentsBitIdentical) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  for (const Golden& g : Goldens()) {
    SCOPED_TRACE(g.name);
    const std::string gguf = SharedDir() + "/models/" + g.model + ".gguf";
    const std::vector<float> a = CheckAgainstGolden(gguf, g);
    // Small fragments, so that the larger tensors are split into row-shards.
    TempDir dir;
    fragments::FragmentOptions fo;
    fo.chunk_size = 16 << 10;
    fo.force = true;
    auto fr = fragments::FragmentModel(gguf, dir.path(), fo);
    ASSERT_TRUE(fr.ok()) << fr.status().ToString();
    const std::vector<float> b = CheckAgainstGolden(dir.path(), g);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
        << "logits from fragments differ from logits from the GGUF";
  }
}

// The AVX2 row dots (which also take the prompt there) on the Q8_0 models.
TEST(InferenceGolden, Avx2AgreesWithLlamaCpp) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  ScopedIsa avx2(kernels::Isa::kAvx2);
  if (!avx2.has(kernels::Isa::kAvx2))
    GTEST_SKIP() << "this CPU has no AVX2 (or GGSWARM_ISA=scalar)";
  int checked = 0;
  for (const Golden& g : Goldens()) {
    if (g.model.find("q8_0") == std::string::npos) continue;
    SCOPED_TRACE(g.name);
    CheckAgainstGolden(SharedDir() + "/models/" + g.model + ".gguf", g);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(InferenceGolden, GreedyGenerationMatchesLlamaCppText) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  const auto g = LoadJson(SharedDir() + "/golden/stories260K-f32.p1.json");
  auto e = Engine::Open(SharedDir() + "/models/stories260K-f32.gguf", {.threads = 2});
  ASSERT_TRUE(e.ok());
  GenerateOptions o;
  o.max_tokens = 64;
  o.ignore_eos = true;
  o.sampling.temperature = 0;
  std::string streamed;
  auto r = Generate(**e, (*e)->tokenizer().Encode(g["prompt"].get<std::string>()), o,
                    [&](const std::string& s, int32_t) {
                      streamed += s;
                      return true;
                    });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tokens, g["generated_tokens"].get<std::vector<int32_t>>());
  EXPECT_EQ(r->text, g["generated_text"].get<std::string>());
  EXPECT_EQ(streamed, r->text);
}

TEST(Sampling, SameSeedSameTextAndTopKOneIsGreedy) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto e = Engine::Open(SharedDir() + "/models/stories260K-q8_0.gguf", {.threads = 1});
  ASSERT_TRUE(e.ok());
  auto prompt = (*e)->tokenizer().Encode("Lily and Tom");
  auto gen = [&](SamplerOptions s) {
    (*e)->Truncate(0);
    GenerateOptions o;
    o.max_tokens = 40;
    o.ignore_eos = true;
    o.sampling = s;
    auto r = Generate(**e, prompt, o);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      return std::vector<int32_t>{};
    }
    return r->tokens;
  };
  SamplerOptions s;
  s.temperature = 1.0f;
  s.seed = 7;
  const auto a = gen(s), b = gen(s);
  EXPECT_EQ(a, b);
  s.seed = 8;
  EXPECT_NE(gen(s), a) << "different seeds gave the same 40 tokens";
  SamplerOptions greedy;
  greedy.temperature = 0;
  SamplerOptions k1;
  k1.temperature = 1.5f;
  k1.top_k = 1;
  k1.repeat_penalty = 1.0f;
  EXPECT_EQ(gen(k1), gen(greedy));
}

// OpenAI's penalties and logit bias, by hand: logits (1, 2, 1.5, 0.5) after tokens 1, 1, 2.
// frequency 0.4, presence 0.3: token 1 becomes 2 - (2 · 0.4 + 0.3) = 0.9, token 2 becomes
// 1.5 - (0.4 + 0.3) = 0.8, so token 0 (1.0) leads; they apply to greedy picks too. A bias of
// +1.6 on token 3 (0.5 → 2.1) wins without penalties; -100 bans the argmax. The repetition
// penalty stays out of greedy picks (as llama.cpp's greedy runs leave it).
TEST(Sampling, FrequencyAndPresencePenaltiesAndLogitBiasAreOpenAis) {
  const std::vector<float> logits = {1.0f, 2.0f, 1.5f, 0.5f};
  auto pick = [&](SamplerOptions o) {
    Sampler s(o);
    for (int32_t t : {1, 1, 2}) s.Accept(t);
    return s.Sample(logits);
  };
  SamplerOptions greedy;
  greedy.temperature = 0;
  greedy.repeat_penalty = 100;  // left out of greedy picks
  EXPECT_EQ(pick(greedy), 1);
  SamplerOptions pen = greedy;
  pen.frequency_penalty = 0.4f;
  pen.presence_penalty = 0.3f;
  EXPECT_EQ(pick(pen), 0);
  pen.frequency_penalty = 0.2f;  // token 1: 2 - 0.7 = 1.3; token 2: 1.5 - 0.5 = 1.0
  EXPECT_EQ(pick(pen), 1);
  SamplerOptions bias = greedy;
  bias.logit_bias = {{3, 1.6f}};
  EXPECT_EQ(pick(bias), 3);
  bias.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(pick(bias), 2);
  // Sampling: top-k 1 keeps the best after penalties and bias, whatever the temperature.
  SamplerOptions k1;
  k1.temperature = 1.5f;
  k1.top_k = 1;
  k1.repeat_penalty = 1.0f;
  k1.frequency_penalty = 0.4f;
  k1.presence_penalty = 0.3f;
  EXPECT_EQ(pick(k1), 0);
  k1.logit_bias = {{3, 1.6f}};
  EXPECT_EQ(pick(k1), 3);
  // Out of range: refused by name.
  GenerateOptions g;
  g.sampling.frequency_penalty = 2.5f;
  EXPECT_NE(CheckGenerateOptions(g).message().find("frequency_penalty"), std::string::npos);
  g.sampling.frequency_penalty = 0;
  g.sampling.logit_bias = {{5, 101.0f}};
  EXPECT_NE(CheckGenerateOptions(g).message().find("logit_bias of token 5"), std::string::npos);
}

// A model whose weights make a logit NaN or infinite (a hostile or broken file) gives an
// error naming it, from the engine and from `ggswarm run` (non-zero exit), not some token.
TEST(Inference, ANonFiniteLogitIsAnErrorNotAToken) {
  TempDir dir;
  SynthOptions so{*FindPreset("tiny"), *ParseTypeMix("F32"), 2, "t"};
  ASSERT_TRUE(Synthesize(so, dir / "m.gguf", false).ok());
  auto f = gguf::GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(f.ok());
  uint64_t at = 0;
  for (const gguf::TensorInfo& t : f->tensors)
    if (t.name == "output_norm.weight") at = f->data_offset + t.offset;
  ASSERT_GT(at, 0u);
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    std::vector<uint8_t> bytes = testing::ReadBytes(dir / "m.gguf");
    std::memcpy(bytes.data() + at, &bad, sizeof bad);
    testing::WriteBytes(dir / "bad.gguf", bytes);
    auto e = Engine::Open(dir / "bad.gguf", {.threads = 2, .n_ctx = 32});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<float> logits;
    const int32_t toks[] = {1, 5, 9};
    const Status st = (*e)->Eval(toks, &logits);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("not a finite number"), std::string::npos) << st.message();
    const std::string err = dir / "err.txt";
    const int rc = std::system((std::string(GGSWARM_CLI) + " run " + dir / "bad.gguf" +
                                " -p hello -n 4 --temp 0.8 >/dev/null 2>" + err)
                                   .c_str());
    EXPECT_NE(rc, 0);
    const std::vector<uint8_t> said = testing::ReadBytes(err);
    EXPECT_NE(std::string(said.begin(), said.end()).find("not a finite number"), std::string::npos);
  }
}

TEST(Inference, KvCacheContinuationEqualsOneBatch) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto e = Engine::Open(SharedDir() + "/models/stories260K-f32.gguf", {.threads = 2});
  ASSERT_TRUE(e.ok());
  const auto toks = (*e)->tokenizer().Encode("Once upon a time, there was a dog");
  std::vector<float> whole, split;
  ASSERT_TRUE((*e)->Eval(toks, &whole).ok());
  (*e)->Truncate(0);
  const size_t h = toks.size() / 2;
  ASSERT_TRUE((*e)->Eval({toks.data(), h}, &split).ok());
  ASSERT_TRUE((*e)->Eval({toks.data() + h, toks.size() - h}, &split).ok());
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(whole[i], split[i], 1e-4) << i;
}

// The fast paths against the scalar reference path, on random models of the types the fast
// kernels cover: a prompt in one batch (tiles: AMX or VNNI), the same prompt one token at a
// time (row dots), and both with the kernels switched off (GGSWARM_ISA=scalar) must give
// the same last logits up to float summation order.
void CheckFastAgainstScalar(bool check_rows, int n_tokens = 21,
                            kernels::Isa fast = kernels::Isa::kAvx512Vnni) {
  for (const char* type : {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "Q5_1", "Q3_K"}) {
    SCOPED_TRACE(type);
    TempDir dir;
    SynthOptions so{*FindPreset("tiny"), *ParseTypeMix(type), 3, "t"};
    ASSERT_TRUE(Synthesize(so, dir / "m.gguf", false).ok());
    auto e = Engine::Open(dir / "m.gguf", {.threads = 2, .n_ctx = 64});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<int32_t> toks;
    for (int i = 0; i < n_tokens; ++i) toks.push_back(1 + (i * 37) % 500);
    auto last_logits = [&](bool batch) {
      (*e)->Truncate(0);
      std::vector<float> l;
      if (batch) {
        EXPECT_TRUE((*e)->Eval(toks, &l).ok());
      } else {
        for (int32_t t : toks) EXPECT_TRUE((*e)->Eval({&t, 1}, &l).ok());
      }
      return l;
    };
    std::vector<float> tiles, rows, ref_batch, ref_rows;
    {
      ScopedIsa scoped(fast);
      tiles = last_logits(true), rows = last_logits(false);
    }
    {
      ScopedIsa scoped(kernels::Isa::kScalar);
      ref_batch = last_logits(true), ref_rows = last_logits(false);
    }
    const auto [lo, hi] = std::minmax_element(ref_batch.begin(), ref_batch.end());
    // Summation order differs; an activation near a rounding boundary of the 8-bit
    // quantization can then flip in a later layer (as against llama.cpp, see below).
    const double tol = model::kKernelLogitTolerance * (*hi - *lo);  // as for llama.cpp, below
    for (size_t i = 0; i < ref_batch.size(); ++i) {
      ASSERT_NEAR(ref_rows[i], ref_batch[i], tol) << i;
      ASSERT_NEAR(tiles[i], ref_batch[i], tol) << i;
      if (check_rows) {
        ASSERT_NEAR(rows[i], ref_batch[i], tol) << i;
      }
    }
  }
}

TEST(Inference, FastTilesAgreeWithTheScalarPath) { CheckFastAgainstScalar(false); }

// A prompt long enough for the bf16 tiles (kBf16MinTokens), where the CPU has them. Their
// rounding is not llama.cpp's, so the truth here is the exact computation: the same model
// with its matrices dequantized to F32 (activations never quantized), on the scalar path.
// The bf16 tiles must come within 1e-2 of its range. Measured (48 tokens, largest difference
// as a fraction of the range, printed by the test): bf16 tiles 0.22–0.63%; the scalar path
// with 8-bit activations, as llama.cpp rounds them, 0.22–1.83% (Q6_K), never closer.
TEST(Inference, Bf16TilesAgreeWithTheExactComputation) {
  static_assert(model::kBf16MinTokens <= 48);
  if (!kernels::AmxBf16Active()) GTEST_SKIP() << "this CPU has no AMX-BF16 (or GGSWARM_AMX=0)";
  std::vector<int32_t> toks;
  for (int i = 0; i < 48; ++i) toks.push_back(1 + (i * 37) % 500);
  auto last_logits = [&](const std::string& path) {
    auto e = Engine::Open(path, {.threads = 2, .n_ctx = 64});
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    std::vector<float> l;
    if (e.ok()) {
      EXPECT_TRUE((*e)->Eval(toks, &l).ok());
    }
    return l;
  };
  for (const char* type : {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "Q5_1", "Q3_K"}) {
    SCOPED_TRACE(type);
    TempDir dir;
    SynthOptions so{*FindPreset("tiny"), *ParseTypeMix(type), 3, "t"};
    ASSERT_TRUE(Synthesize(so, dir / "m.gguf", false).ok());
    ASSERT_TRUE(QuantizeModel(dir / "m.gguf", dir / "f32.gguf", *ParseTypeMix("F32"), false).ok());
    const auto bf16 = last_logits(dir / "m.gguf");
    std::vector<float> exact, integer;
    {
      ScopedIsa scalar(kernels::Isa::kScalar);
      exact = last_logits(dir / "f32.gguf"), integer = last_logits(dir / "m.gguf");
    }
    ASSERT_EQ(bf16.size(), exact.size());
    const auto [lo, hi] = std::minmax_element(exact.begin(), exact.end());
    double worst_bf16 = 0, worst_integer = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      worst_bf16 = std::max(worst_bf16, std::fabs(double(bf16[i]) - exact[i]));
      worst_integer = std::max(worst_integer, std::fabs(double(integer[i]) - exact[i]));
    }
    std::printf(
        "%-7s largest difference from the exact logits, of their range: bf16 tiles %.4f, "
        "8-bit activations %.4f\n",
        type, worst_bf16 / (*hi - *lo), worst_integer / (*hi - *lo));
    EXPECT_LE(worst_bf16, 1e-2 * (*hi - *lo));
  }
}

// One token at a time (the row-dot kernels).
TEST(Inference, FastRowDotsAgreeWithTheScalarPath) { CheckFastAgainstScalar(true); }

// The AVX2 kernels (CPUs without AVX-512), which take prompts too, a token at a time.
TEST(Inference, Avx2RowDotsAgreeWithTheScalarPath) {
  if (!ScopedIsa(kernels::Isa::kAvx2).has(kernels::Isa::kAvx2))
    GTEST_SKIP() << "this CPU has no AVX2 (or GGSWARM_ISA=scalar)";
  CheckFastAgainstScalar(true, 21, kernels::Isa::kAvx2);
}

// RmsNorm adds its squares in eight running sums; ggml adds them one after another, in
// double. Over rows of every length up to 70 and of the models' widths, the float results
// must be the same bits as ggml's formula gives.
TEST(Inference, RmsNormIsGgmlsFormulaBitForBit) {
  std::mt19937 rng(3);
  std::lognormal_distribution<float> mag(0.0f, 2.0f);
  std::vector<int> lengths;
  for (int n = 1; n <= 70; ++n) lengths.push_back(n);
  for (int n : {288, 2048, 4096, 5120}) lengths.push_back(n);
  for (int n : lengths) {
    for (int rep = 0; rep < 20; ++rep) {
      std::vector<float> x(n), w(n), got(n);
      for (int i = 0; i < n; ++i) {
        x[i] = (rng() % 2 ? 1.0f : -1.0f) * mag(rng);
        w[i] = mag(rng);
      }
      model::RmsNorm(x.data(), w.data(), got.data(), n, 1e-5f);
      double sum = 0;  // ggml_compute_forward_rms_norm_f32
      for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
      const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + 1e-5f);
      for (int i = 0; i < n; ++i)
        ASSERT_EQ(got[i], (x[i] * scale) * w[i]) << "n " << n << " rep " << rep << " i " << i;
    }
  }
}

// Random models of every weight type, made by our own writer exactly as
// tests/data/make_type_goldens.sh made them for llama.cpp; logits must agree with llama.cpp's.
// Tolerances, as fractions of the logits' range:
//  - F32 1e-4 and F16 1e-3 as for the trained models above;
//  - BF16 3e-3: activations are rounded to bf16 (8-bit mantissa, relative step 3.9e-3)
//    before each product, so one value rounding the other way moves a logit by up to that;
//  - quantized weights 1.5e-2 (model::kKernelLogitTolerance): activations are rounded to 8-bit
//  integers per block (step
//    1/127 of the block's largest value, 0.8%), and a block value on the other side of a
//    rounding boundary moves the result by up to that step. Most types agree to 1e-7
//    (Q8_0, Q4_1, Q4_K, Q5_K, Q6_K, the Q4_K_M mix); Q4_0, Q5_0, Q5_1, Q2_K, Q3_K show such
//    flips (largest 8.2e-3 of the range, Q3_K).
void CheckEveryWeightType() {
  const std::string data = std::string(GGSWARM_SOURCE_DIR) + "/tests/data/types/";
  struct Case {
    const char* type;
    double tol;
  };
  for (const Case c : {Case{"F32", 1e-4},
                       {"F16", 1e-3},
                       {"BF16", 3e-3},
                       {"Q4_0", model::kKernelLogitTolerance},
                       {"Q4_1", model::kKernelLogitTolerance},
                       {"Q5_0", model::kKernelLogitTolerance},
                       {"Q5_1", model::kKernelLogitTolerance},
                       {"Q8_0", model::kKernelLogitTolerance},
                       {"Q2_K", model::kKernelLogitTolerance},
                       {"Q3_K", model::kKernelLogitTolerance},
                       {"Q4_K", model::kKernelLogitTolerance},
                       {"Q5_K", model::kKernelLogitTolerance},
                       {"Q6_K", model::kKernelLogitTolerance},
                       {"Q4_K_M", model::kKernelLogitTolerance}}) {
    SCOPED_TRACE(c.type);
    TempDir dir;
    SynthOptions so{*FindPreset("tiny"), *ParseTypeMix(c.type), 1, "ggswarm-synth-tiny"};
    ASSERT_TRUE(Synthesize(so, dir / "m.gguf", false).ok());
    const auto g = LoadJson(data + "tiny-" + c.type + ".json");
    const auto want = LoadJson(data + "tiny-" + c.type + ".logits.json").get<std::vector<float>>();
    auto e = Engine::Open(dir / "m.gguf", {.threads = 2, .n_ctx = 64});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    const std::vector<int32_t> prompt = g["prompt_tokens"];
    ASSERT_EQ((*e)->tokenizer().Encode(g["prompt"].get<std::string>()), prompt);
    std::vector<float> logits;
    ASSERT_TRUE((*e)->Eval(prompt, &logits).ok());
    ASSERT_EQ(logits.size(), want.size());
    const auto [lo, hi] = std::minmax_element(want.begin(), want.end());
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i)
      worst = std::max(worst, std::fabs(double(logits[i]) - want[i]));
    EXPECT_LE(worst, c.tol * (*hi - *lo));
    // The argmax too, where llama.cpp's top two are further apart than the tolerance.
    const auto top = g["top10"];
    if (top[0][1].get<double>() - top[1][1].get<double>() > c.tol * (*hi - *lo)) {
      EXPECT_EQ(Argmax(logits), top[0][0].get<int32_t>());
    }
  }
}

// Checked on the best instruction set this CPU has and, where that is more, on AVX2.
TEST(InferenceGolden, EveryWeightTypeAgreesWithLlamaCpp) {
  std::vector<kernels::Isa> isas = {kernels::Active()};
  if (ScopedIsa(kernels::Isa::kAvx2).has(kernels::Isa::kAvx2) && isas[0] != kernels::Isa::kAvx2)
    isas.push_back(kernels::Isa::kAvx2);
  for (kernels::Isa isa : isas) {
    SCOPED_TRACE(kernels::IsaName(isa));
    ScopedIsa scoped(isa);
    CheckEveryWeightType();
  }
}

// The caches hold llamacpp-ref's 512 positions (Phi-3's rope factors depend on the context).
// F32 within 3e-4 of the logits' range, not the trained models' 1e-4: on random weights the
// f32 sums' order shows more, and differs by build (measured: qwen2 2.4e-5 in the native build,
// 1.4e-4 in the portable one, whose f32 dot products are not contracted into FMAs).
// Random models of the other architectures (model/config.h's table) and of a Llama 3 (tied
// head, rope_freqs, its BPE vocabulary), made by `ggswarm synth` with tests/arch_cases.h's
// flags exactly as tests/data/make_arch_goldens.sh made them for llama.cpp: the prompt's logits
// within the tolerances of CheckEveryWeightType, and llama.cpp's greedy continuation taken
// token by token (teacher forcing) wherever our top two are further apart than that; the
// same bits from a fragment directory.
TEST(InferenceGolden, OtherArchitecturesAgreeWithLlamaCpp) {
  const std::string data = std::string(GGSWARM_SOURCE_DIR) + "/tests/data/archs/";
  for (const auto& [arch, flags] : testing::kArchCases) {
    for (const auto& [type, tol] : {std::pair<const char*, double>{"F32", 3e-4},
                                    {"Q8_0", model::kKernelLogitTolerance},
                                    {"Q4_K_M", model::kKernelLogitTolerance}}) {
      SCOPED_TRACE(std::string(arch) + " " + type);
      TempDir dir;
      const std::string synth = std::string(GGSWARM_CLI) + " synth " + dir / "m.gguf" +
                                " --preset tiny " + flags + " --type " + type +
                                " --seed 1 >/dev/null";
      ASSERT_EQ(std::system(synth.c_str()), 0) << synth;
      const auto g = LoadJson(data + arch + "-" + type + ".json");
      const auto want =
          LoadJson(data + arch + "-" + type + ".logits.json").get<std::vector<float>>();
      const auto [lo, hi] = std::minmax_element(want.begin(), want.end());
      const double abs_tol = tol * (*hi - *lo);
      fragments::FragmentOptions fo;
      fo.chunk_size = 32 << 10;
      ASSERT_TRUE(fragments::FragmentModel(dir / "m.gguf", dir / "frag", fo).ok());
      std::vector<float> first[2];
      for (int from = 0; from < 2; ++from) {
        auto e = Engine::Open(from ? dir / "frag" : dir / "m.gguf", {.threads = 2, .n_ctx = 512});
        ASSERT_TRUE(e.ok()) << e.status().ToString();
        const std::vector<int32_t> prompt = g["prompt_tokens"];
        ASSERT_EQ((*e)->tokenizer().Encode(g["prompt"].get<std::string>()), prompt);
        std::vector<float> logits;
        ASSERT_TRUE((*e)->Eval(prompt, &logits).ok());
        ASSERT_EQ(logits.size(), want.size());
        first[from] = logits;
        double worst = 0;
        for (size_t i = 0; i < want.size(); ++i)
          worst = std::max(worst, std::fabs(double(logits[i]) - want[i]));
        EXPECT_LE(worst, abs_tol);
        EXPECT_GE(TeacherForced(**e, logits, g["generated_tokens"], abs_tol), 32)
            << "too few steps were decisive to compare";
      }
      EXPECT_EQ(first[0], first[1]) << "logits from fragments differ from logits from the GGUF";
    }
  }
}

// A sliding window in a long batch: the f32 attention of long runs (kBf16MinTokens tokens,
// AVX-512) starts each token's keys at its window, as the f16 attention of a token alone
// does. The last logits of 40 tokens in one batch and one by one agree (the two attentions
// round differently: within the quantized types' tolerance, above); a batch that let the
// local layers see past their window of 4 would be far off.
TEST(Inference, SlidingWindowHoldsInLongBatches) {
  static_assert(model::kBf16MinTokens <= 40);
  for (const char* arch : {"gemma2", "gemma3"}) {
    SCOPED_TRACE(arch);
    TempDir dir;
    const std::string synth = std::string(GGSWARM_CLI) + " synth " + dir / "m.gguf" +
                              " --preset tiny --arch " + arch +
                              " --vocab gemma --swa 4 --type Q8_0 >/dev/null";
    ASSERT_EQ(std::system(synth.c_str()), 0) << synth;
    auto e = Engine::Open(dir / "m.gguf", {.threads = 2, .n_ctx = 64});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<int32_t> toks;
    for (int i = 0; i < 40; ++i) toks.push_back(10 + (i * 37) % 500);
    std::vector<float> batch, single;
    ASSERT_TRUE((*e)->Eval(toks, &batch).ok());
    (*e)->Truncate(0);
    for (int32_t t : toks) ASSERT_TRUE((*e)->Eval({&t, 1}, &single).ok());
    const auto [lo, hi] = std::minmax_element(single.begin(), single.end());
    for (size_t i = 0; i < single.size(); ++i)
      ASSERT_NEAR(batch[i], single[i], model::kKernelLogitTolerance * (*hi - *lo)) << i;
  }
}

// One batch of several sequences — two decoding steps and prompt chunks of 5 to 30 tokens,
// 120 in all, which the batch multiplies together as far as model::ExactBatch allows (all
// together, they would go to the tiles) — gives every run the bits it gets in a batch of its
// own, from the same cache, on every instruction set: the row-dot types, a K-quant mix with
// Q6_K, and F16 (no row dots: its chunks stay apart).
TEST(Inference, PromptChunksBatchedTogetherGiveEachRunItsOwnBits) {
  TempDir dir;
  for (const char* type : {"Q8_0", "Q4_K_M", "F16"}) {
    SCOPED_TRACE(type);
    const std::string path = dir / (std::string(type) + ".gguf");
    const std::string synth = std::string(GGSWARM_CLI) + " synth " + path +
                              " --preset tiny --type " + type + " >/dev/null";
    ASSERT_EQ(std::system(synth.c_str()), 0) << synth;
    auto src = fragments::OpenModel(path);
    ASSERT_TRUE(src.ok());
    auto m = model::LlamaModel::Load(std::shared_ptr<TensorSource>(std::move(*src)));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    std::shared_ptr<model::LlamaModel> lm = std::move(*m);
    const model::LlamaConfig& c = lm->config();
    const int d = c.n_embd;
    ThreadPool pool(2);
    const std::vector<int> lengths = {1, 1, 5, 7, 13, 9, 30, 29, 25};
    const int n_seq = static_cast<int>(lengths.size());
    auto ids = [&](int seq, int n, int from) {
      std::vector<int32_t> v;
      for (int i = 0; i < n; ++i) v.push_back(3 + (seq * 101 + (from + i) * 37) % (c.n_vocab - 3));
      return v;
    };
    for (kernels::Isa isa :
         {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512Vnni}) {
      ScopedIsa scoped(isa);
      if (!scoped.has(isa)) continue;
      SCOPED_TRACE(kernels::IsaName(isa));
      model::LayerRange together(lm, 0, c.n_layer, 64, n_seq, 64),
          apart(lm, 0, c.n_layer, 64, n_seq, 64);
      // Every sequence first gets a prefix of its own (3 + seq tokens), alone, in both.
      for (int s = 0; s < n_seq; ++s)
        for (model::LayerRange* r : {&together, &apart}) {
          std::vector<float> x(static_cast<size_t>(3 + s) * d);
          ASSERT_TRUE(lm->Embed(ids(s, 3 + s, 0), x.data()).ok());
          const model::SeqRun run{s, 3 + s};
          ASSERT_TRUE(r->ForwardBatch(x.data(), std::span(&run, 1), pool).ok());
        }
      // Then the runs in one batch, and each in a batch of its own.
      std::vector<model::SeqRun> runs;
      std::vector<float> x;
      std::vector<std::vector<float>> own;
      for (int s = 0; s < n_seq; ++s) {
        runs.push_back({s, lengths[s]});
        std::vector<float> e(static_cast<size_t>(lengths[s]) * d);
        ASSERT_TRUE(lm->Embed(ids(s, lengths[s], 3 + s), e.data()).ok());
        x.insert(x.end(), e.begin(), e.end());
        const model::SeqRun run{s, lengths[s]};
        ASSERT_TRUE(apart.ForwardBatch(e.data(), std::span(&run, 1), pool).ok());
        own.push_back(std::move(e));
      }
      ASSERT_TRUE(together.ForwardBatch(x.data(), runs, pool).ok());
      size_t at = 0;
      for (int s = 0; s < n_seq; ++s) {
        const std::vector<float> got(x.begin() + at, x.begin() + at + own[s].size());
        EXPECT_EQ(got, own[s]) << "sequence " << s << ", a run of " << lengths[s];
        at += own[s].size();
        EXPECT_EQ(together.n_past(s), apart.n_past(s));
      }
    }
  }
}

// The local layers' cache keeps a window, not the context (KvCache): n_swa + max_run - 1
// cells, slid down as positions pass. The same runs through a range whose local layers keep
// every position (max_run as large as the context) and through ones that keep 4 + 3 - 1 or
// 4 + 40 - 1 give the same bits, from short runs (f16 attention), runs of 40 (f32 attention
// of long runs), and a run longer than max_run (taken in pieces: compared with the same
// pieces); a range without a local layer keeps every position. Going back is refused where
// the window's keys are gone, and gives the same bits where they are not.
TEST(Inference, SlidingWindowCacheHoldsOnlyTheWindow) {
  TempDir dir;
  const std::string synth = std::string(GGSWARM_CLI) + " synth " + dir / "m.gguf" +
                            " --preset tiny --arch gemma3 --vocab gemma --swa 4 --swa-pattern 2"
                            " --type Q8_0 >/dev/null";
  ASSERT_EQ(std::system(synth.c_str()), 0) << synth;
  auto src = fragments::OpenModel(dir / "m.gguf");
  ASSERT_TRUE(src.ok());
  auto m = model::LlamaModel::Load(std::shared_ptr<TensorSource>(std::move(*src)));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::shared_ptr<model::LlamaModel> lm = std::move(*m);
  const model::LlamaConfig& c = lm->config();
  ASSERT_EQ(c.n_swa, 4);
  ASSERT_GE(c.n_layer, 2);
  ThreadPool pool(2);
  const int d = c.n_embd, n_ctx = 200;
  // Hand-computed sizes: layers 0, 2, … local (every second global), f16 k and v per cell.
  const uint64_t cell = 2ull * 2 * c.kv_dim();
  const uint64_t n_local = static_cast<uint64_t>(c.n_layer) / 2 + c.n_layer % 2;
  EXPECT_EQ(model::LayerRange::KvBytes(c, 0, c.n_layer, n_ctx, n_ctx), cell * n_ctx * c.n_layer);
  EXPECT_EQ(model::LayerRange::KvBytes(c, 0, c.n_layer, n_ctx, 3),
            cell * (n_ctx * (c.n_layer - n_local) + 6 * n_local));
  EXPECT_EQ(model::LayerRange::KvBytes(c, 1, 2, n_ctx, 3), cell * n_ctx);  // layer 1: global

  // Feeds the runs to each range; every range's hidden states must be the first's.
  auto feed = [&](std::vector<model::LayerRange*> ranges, const std::vector<int>& runs,
                  int first_token) {
    int tok = first_token;
    for (int n : runs) {
      std::vector<int32_t> ids;
      for (int i = 0; i < n; ++i) ids.push_back(10 + (tok++ * 37) % 500);
      std::vector<float> want;
      for (size_t r = 0; r < ranges.size(); ++r) {
        std::vector<float> x(static_cast<size_t>(n) * d);
        ASSERT_TRUE(lm->Embed(ids, x.data()).ok());
        const Status st = ranges[r]->Forward(x.data(), n, pool);
        ASSERT_TRUE(st.ok()) << st.ToString();
        if (r == 0)
          want = x;
        else
          ASSERT_EQ(x, want) << "range " << r << ", a run of " << n << " at position "
                             << ranges[r]->n_past() - n;
      }
    }
  };
  {  // short runs: the f16 attention
    model::LayerRange full(lm, 0, c.n_layer, n_ctx, 1, n_ctx), ring(lm, 0, c.n_layer, n_ctx, 1, 3);
    std::vector<int> runs;
    for (int i = 0; i < 30; ++i) runs.push_back(1 + i % 3);  // 60 positions
    feed({&full, &ring}, runs, 0);
    EXPECT_EQ(ring.n_past(), 60);
    EXPECT_GT(ring.KeptFrom(), 50);  // slid: the window of 6 cells holds positions 54 … 59
    EXPECT_FALSE(ring.Truncate(20));
    EXPECT_EQ(ring.n_past(), 60);
    const int back = ring.KeptFrom();
    ASSERT_TRUE(ring.Truncate(back));
    ASSERT_TRUE(full.Truncate(back));
    feed({&full, &ring}, {2, 1, 3, 1}, 1000);
    ASSERT_TRUE(ring.Truncate(0));
    ASSERT_TRUE(full.Truncate(0));
    feed({&full, &ring}, {3, 3, 1, 2}, 0);
  }
  {  // runs of 40: the f32 attention of long runs, with a window that starts inside the cells
    static_assert(model::kBf16MinTokens <= 40);
    const int ctx = 256;
    model::LayerRange full(lm, 0, c.n_layer, ctx, 1, ctx), ring(lm, 0, c.n_layer, ctx, 1, 40);
    feed({&full, &ring}, {40, 40, 1, 40, 7, 40}, 0);
    // A run of 60 where runs of 40 fit: taken as 40 and 20, as the full cache is given them.
    std::vector<int32_t> ids;
    for (int i = 0; i < 60; ++i) ids.push_back(20 + i * 7);
    std::vector<float> whole(static_cast<size_t>(60) * d), a(static_cast<size_t>(40) * d),
        b(static_cast<size_t>(20) * d);
    ASSERT_TRUE(lm->Embed(ids, whole.data()).ok());
    ASSERT_TRUE(lm->Embed(std::span(ids).first(40), a.data()).ok());
    ASSERT_TRUE(lm->Embed(std::span(ids).last(20), b.data()).ok());
    ASSERT_TRUE(ring.Forward(whole.data(), 60, pool).ok());
    ASSERT_TRUE(full.Forward(a.data(), 40, pool).ok());
    ASSERT_TRUE(full.Forward(b.data(), 20, pool).ok());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), whole.begin()));
    EXPECT_TRUE(std::equal(b.begin(), b.end(), whole.begin() + a.size()));
    EXPECT_EQ(ring.n_past(), 228);
    // In a batch of several sequences it is refused, and nothing changes.
    model::LayerRange two(lm, 0, c.n_layer, ctx, 2, 40);
    std::vector<float> x(static_cast<size_t>(61) * d);
    ASSERT_TRUE(lm->Embed(std::vector<int32_t>(61, 30), x.data()).ok());
    const model::SeqRun runs[] = {{0, 60}, {1, 1}};
    EXPECT_FALSE(two.ForwardBatch(x.data(), runs, pool).ok());
    EXPECT_EQ(two.n_past(0) + two.n_past(1), 0);
  }
  {  // a stage of one global layer keeps every position and goes back anywhere
    model::LayerRange global(lm, 1, 2, n_ctx, 1, 3);
    std::vector<float> x(static_cast<size_t>(50) * d, 0.5f);
    ASSERT_TRUE(global.Forward(x.data(), 50, pool).ok());
    EXPECT_EQ(global.KeptFrom(), 0);
    EXPECT_TRUE(global.Truncate(7));
  }
}

TEST(Generation, StopsAtEndOfGenerationUnlessIgnored) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  // The TinyStories models never end a story with </s>; a copy whose end-of-sequence token
  // is the second token of llama.cpp's greedy continuation (383) must stop right there.
  TempDir t;
  auto f = gguf::GgufFile::Open(SharedDir() + "/models/stories260K-f32.gguf");
  ASSERT_TRUE(f.ok());
  gguf::GgufWriter w = gguf::WriterFor(*f);
  w.Set("tokenizer.ggml.eos_token_id", gguf::Value::Uint32(383));
  ASSERT_TRUE(w.Write(t / "m.gguf", false, [&](size_t i, OutputFile& out) {
                 return out.Write(f->TensorBytes(f->tensors[i]));
               }).ok());
  auto e = Engine::Open(t / "m.gguf", {.threads = 1});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  GenerateOptions o;
  o.max_tokens = 64;
  o.sampling.temperature = 0;
  const auto prompt = (*e)->tokenizer().Encode("Once upon a time");
  auto r = Generate(**e, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stop, StopReason::kEndOfGeneration);
  EXPECT_EQ(r->tokens, std::vector<int32_t>{432});
  (*e)->Truncate(0);
  o.ignore_eos = true;
  r = Generate(**e, prompt, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens.size(), 64u);
  EXPECT_EQ(r->stop, StopReason::kMaxTokens);
}

TEST(Generation, ContinuesFromTheCacheAndStopsWhenTheContextIsFull) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto e = Engine::Open(SharedDir() + "/models/stories260K-f32.gguf", {.threads = 1, .n_ctx = 32});
  ASSERT_TRUE(e.ok());
  GenerateOptions o;
  o.max_tokens = 10;
  o.sampling.temperature = 0;
  auto a = Generate(**e, (*e)->tokenizer().Encode("Once upon a time"), o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*e)->n_past(), 5 + 9);  // the last token is sampled, not yet evaluated
  // A second turn continues at position 14 with its own tokens only.
  const auto turn = (*e)->tokenizer().Encode("Lily", false);
  auto b = Generate(**e, turn, o);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*e)->n_past(), 14 + static_cast<int>(turn.size()) + 9);
  o.max_tokens = 100;
  auto c = Generate(**e, (*e)->tokenizer().Encode(" The", false), o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->stop, StopReason::kContextFull);
  EXPECT_EQ((*e)->n_past(), 32);
}

// A metadata key set to a bad value, and the words the refusal must contain.
struct KeyCase {
  std::string key;
  gguf::Value value;
  const char* message;
};

// Copies of `f` with one key changed (into `dir`): each must be refused by name.
void ExpectEachKeyRefused(const gguf::GgufFile& f, const std::string& dir,
                          std::span<const KeyCase> cases) {
  for (const KeyCase& c : cases) {
    SCOPED_TRACE(c.key);
    gguf::GgufWriter w = gguf::WriterFor(f);
    w.Set(c.key, c.value);
    ASSERT_TRUE(w.Write(dir + "/m.gguf", true, [&](size_t i, OutputFile& out) {
                   return out.Write(f.TensorBytes(f.tensors[i]));
                 }).ok());
    auto e = Engine::Open(dir + "/m.gguf");
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find(c.message), std::string::npos) << e.status().ToString();
  }
}

// Copies of a shared model with one metadata value changed must be refused by name.
TEST(InferenceErrors, BadModelsAreRefusedWithTheReason) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto f = gguf::GgufFile::Open(SharedDir() + "/models/stories260K-f32.gguf");
  ASSERT_TRUE(f.ok());
  const KeyCase cases[] = {
      {"general.architecture", gguf::Value::String("gpt2"), "architecture 'gpt2' is not supported"},
      {"general.architecture", gguf::Value::String("gemma3n"),
       "architecture 'gemma3n' is not supported (ggswarm runs llama, mistral, qwen2, qwen3, "
       "qwen3moe, mistral3, phi3, gemma2, gemma3)"},
      {"general.architecture", gguf::Value::String("qwen3"),
       "metadata key qwen3.embedding_length is missing"},
      {"llama.block_count", gguf::Value::Uint32(6), "tensor blk.5.attn_norm.weight is missing"},
      {"llama.embedding_length", gguf::Value::Uint32(128), "has shape [64, 512]"},
      {"llama.attention.head_count_kv", gguf::Value::Uint32(3), "not a multiple"},
      {"tokenizer.ggml.model", gguf::Value::String("bert"), "'bert' is not supported"},
      {"llama.block_count", gguf::Value::Float32(5.0f),
       "metadata key llama.block_count has type f32, expected an integer"},
      {"llama.block_count", gguf::Value::Array(gguf::ValueType::UINT32, {gguf::Value::Uint32(5)}),
       "metadata key llama.block_count has type array, expected an integer"},
      {"llama.rope.freq_base", gguf::Value::String("10000"),
       "metadata key llama.rope.freq_base has type str, expected a number"},
      // Experts in a llama (Mixtral's): a count that is not a number is named, not ignored.
      {"llama.expert_count", gguf::Value::String("8"),
       "metadata key llama.expert_count has type str, expected an integer"},
      {"llama.expert_count", gguf::Value::Uint32(8),
       "metadata key llama.expert_used_count is missing"},
  };
  TempDir t;
  ExpectEachKeyRefused(*f, t.path(), cases);
}

// Gemma's own keys, wrong, are refused by name.
TEST(InferenceErrors, BadGemmaKeysAreRefusedWithTheReason) {
  TempDir dir;
  const std::string synth = std::string(GGSWARM_CLI) + " synth " + dir / "g.gguf" +
                            " --preset micro --arch gemma2 --vocab gemma >/dev/null";
  ASSERT_EQ(std::system(synth.c_str()), 0) << synth;
  auto f = gguf::GgufFile::Open(dir / "g.gguf");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(Engine::Open(dir / "g.gguf").ok());
  const gguf::Value flag = gguf::Value::Bool(true);
  const KeyCase cases[] = {
      {"gemma2.attention.sliding_window_pattern",
       gguf::Value::Array(gguf::ValueType::BOOL, {flag, flag, flag}),
       "gemma2.attention.sliding_window_pattern has 3 entries for 2 layers"},
      {"gemma2.attention.sliding_window_pattern", gguf::Value::String("6"),
       "sliding_window_pattern is neither a period nor one flag per layer"},
      {"gemma2.attention.sliding_window", gguf::Value::Uint32(0),
       "gemma2.attention.sliding_window = 0 is not a sensible size"},
      {"gemma2.final_logit_softcapping", gguf::Value::Float32(-30.0f),
       "soft-capping value is not a non-negative number"},
      {"gemma2.rope.freq_base_swa", gguf::Value::String("10000"),
       "metadata key gemma2.rope.freq_base_swa has type str, expected a number"},
  };
  ExpectEachKeyRefused(*f, dir.path(), cases);
}

TEST(InferenceErrors, ContextLimitAndBadPaths) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto e = Engine::Open(SharedDir() + "/models/stories260K-f32.gguf", {.threads = 1, .n_ctx = 8});
  ASSERT_TRUE(e.ok());
  std::vector<float> l;
  const auto toks = (*e)->tokenizer().Encode("Once upon a time there was a big dog and a cat");
  Status s = (*e)->Eval(toks, &l);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("context"), std::string::npos) << s.ToString();
  auto missing = Engine::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no such file"), std::string::npos);
}

TEST(InferenceErrors, CorruptFragmentIsNamedBeforeUse) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  TempDir dir;
  fragments::FragmentOptions fo;
  fo.force = true;
  const std::string gguf = SharedDir() + "/models/stories260K-f32.gguf";
  auto fr = fragments::FragmentModel(gguf, dir.path(), fo);
  ASSERT_TRUE(fr.ok());
  std::string victim;
  for (const auto& f : fr->manifest.fragments)
    if (f.tensor == "blk.3.ffn_up.weight") victim = f.file;
  ASSERT_FALSE(victim.empty());
  auto bytes = testing::ReadBytes(dir / victim);
  bytes[bytes.size() / 2] ^= 0x40;
  testing::WriteBytes(dir / victim, bytes);
  auto e = Engine::Open(dir.path(), {.threads = 1});
  ASSERT_TRUE(e.ok()) << "opening reads only the header and manifest";
  std::vector<float> l;
  Status s = (*e)->Eval((*e)->tokenizer().Encode("Hello"), &l);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(victim), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("SHA-256"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace ggswarm::runtime
