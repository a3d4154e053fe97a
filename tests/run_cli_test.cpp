// `ggswarm run / tokenize / chat` and the Bridge example program, run as a user runs them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace ggswarm {
namespace {

using ggswarm::testing::SharedDir;
using ggswarm::testing::TempDir;

struct Result {
  int code;
  std::string out;  // stdout only
};

Result Shell(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string Cli() { return GGSWARM_CLI; }

nlohmann::json Golden(const std::string& name) {
  std::ifstream in(SharedDir() + "/golden/" + name);
  return nlohmann::json::parse(in);
}

std::string Model(const std::string& m) { return SharedDir() + "/models/" + m + ".gguf"; }

TEST(RunCli, PrintsTheStoryLlamaCppPrints) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  const auto g = Golden("stories260K-f32.p1.json");
  Result r = Shell(Cli() + " run " + Model("stories260K-f32") +
                   " -p 'Once upon a time' -n 64 --temp 0 --ignore-eos");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, g["generated_text"].get<std::string>() + "\n");
}

TEST(RunCli, JsonAndDumpLogits) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  TempDir t;
  const auto g = Golden("stories260K-q8_0.p2.json");
  Result r =
      Shell(Cli() + " run " + Model("stories260K-q8_0") + " -p '" + g["prompt"].get<std::string>() +
            "' -n 64 --temp 0 --ignore-eos --json --dump-logits " + t / "l.json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_tokens"], g["prompt_tokens"]);
  EXPECT_EQ(j["generated_tokens"], g["generated_tokens"]);
  EXPECT_EQ(j["text"], g["generated_text"]);
  EXPECT_TRUE(j["timings"].contains("generation_tokens_per_s"));
  std::ifstream in(t / "l.json");
  const auto logits = nlohmann::json::parse(in).get<std::vector<float>>();
  EXPECT_EQ(logits.size(), 512u);
  // The file is never overwritten without --force.
  r = Shell(Cli() + " run " + Model("stories260K-q8_0") + " -p x -n 1 --dump-logits " +
            t / "l.json");
  EXPECT_EQ(r.code, 1);
}

TEST(RunCli, TokenizeJsonMatchesLlamaCpp) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  Result r = Shell(Cli() + " tokenize " + Model("llama-2-tiny-random") + " 'Hello world' --json");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json({1, 15043, 3186}));
}

TEST(RunCli, BadInputExitsNonZero) {
  TempDir t;
  EXPECT_EQ(Shell(Cli() + " run /nonexistent.gguf -p hi").code, 1);
  std::ofstream(t / "junk.gguf") << "not a gguf at all";
  EXPECT_EQ(Shell(Cli() + " run " + t / "junk.gguf" + " -p hi").code, 1);
  EXPECT_EQ(Shell(Cli() + " tokenize " + t / "junk.gguf" + " hi").code, 1);
  GGSWARM_REQUIRE_SHARED_MODELS();
  // A prompt longer than the context.
  EXPECT_EQ(Shell(Cli() + " run " + Model("stories260K-f32") +
                  " -p 'Once upon a time there was a dog' --ctx 4")
                .code,
            1);
}

TEST(RunCli, ChatKeepsTheConversation) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  // The stories model has no chat template: one is named; two turns from stdin.
  Result r = Shell("printf 'Hello\\nTell me a story\\n' | " + Cli() + " chat " +
                   Model("stories260K-f32") + " --chat-template chatml -n 16 --temp 0");
  EXPECT_EQ(r.code, 0);
  EXPECT_GT(r.out.size(), 20u) << r.out;
  r = Shell("printf 'Hello\\n' | " + Cli() + " chat " + Model("stories260K-f32"));
  EXPECT_EQ(r.code, 1) << "no chat template and none named";
}

TEST(BridgeExample, GeneratesFromGgufAndFragments) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  const auto g = Golden("stories260K-f32.p1.json");
  const std::string want = g["generated_text"].get<std::string>().substr(0, 40);
  Result r = Shell(std::string(GGSWARM_EXAMPLE) + " " + Model("stories260K-f32") +
                   " 'Once upon a time' 32");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out.substr(0, want.size()), want);
  TempDir t;
  ASSERT_EQ(Shell(Cli() + " fragment " + Model("stories260K-f32") + " " + t / "f").code, 0);
  Result f = Shell(std::string(GGSWARM_EXAMPLE) + " " + t / "f" + " 'Once upon a time' 32");
  ASSERT_EQ(f.code, 0);
  EXPECT_EQ(f.out, r.out);
}

// `ggswarm bench` runs from a GGUF file and from fragments and reports consistent figures
// (no timing is asserted: only that every figure is there and the arithmetic holds).
TEST(BenchCli, ReportsEveryFigure) {
  TempDir t;
  ASSERT_EQ(Shell(Cli() + " synth --preset tiny --type Q4_K_M " + t / "m.gguf").code, 0);
  ASSERT_EQ(Shell(Cli() + " fragment " + t / "m.gguf " + t / "frag --chunk-size 64K").code, 0);
  const auto info = nlohmann::json::parse(Shell(Cli() + " inspect --json " + t / "m.gguf").out);
  uint64_t per_token = 0;  // every tensor but the embedding table (the head is untied)
  for (const auto& x : info["tensors"])
    if (x["name"] != "token_embd.weight") per_token += x["size"].get<uint64_t>();
  for (const std::string& model : {t / "m.gguf", t / "frag"}) {
    SCOPED_TRACE(model);
    Result r = Shell(Cli() + " bench " + model + " -p 24 -n 6 -r 2 -t 2 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["pp"]["n"], 24);
    EXPECT_EQ(j["pp"]["runs"].size(), 2u);
    EXPECT_EQ(j["tg"]["n"], 6);
    EXPECT_EQ(j["tg"]["runs"].size(), 2u);
    EXPECT_GT(j["pp"]["mean"].get<double>(), 0);
    EXPECT_GT(j["tg"]["mean"].get<double>(), 0);
    EXPECT_EQ(j["bytes_per_token"].get<uint64_t>(), per_token);
    EXPECT_GT(j["peak_rss_bytes"].get<double>(), 0);
    EXPECT_NEAR(j["tg_bound_tokens_per_s"].get<double>(),
                j["read_bandwidth_bytes_per_s"].get<double>() / per_token, 1e-6 * per_token);
    // Each run against the bandwidth measured right after it.
    ASSERT_EQ(j["tg_bound_runs"].size(), 2u);
    const double b0 = j["tg_bound_runs"][0], b1 = j["tg_bound_runs"][1];
    EXPECT_NEAR(j["tg_bound_tokens_per_s"].get<double>(), (b0 + b1) / 2, 1e-9 * (b0 + b1));
    EXPECT_NEAR(j["tg_fraction_of_bound"].get<double>(),
                (j["tg"]["runs"][0].get<double>() / b0 + j["tg"]["runs"][1].get<double>() / b1) / 2,
                1e-9);
  }
  EXPECT_EQ(Shell(Cli() + " bench " + t / "missing.gguf").code, 1);
  EXPECT_EQ(Shell(Cli() + " bench " + t / "m.gguf -p 0 -n 0").code, 1);
}

}  // namespace
}  // namespace ggswarm
