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

}  // namespace
}  // namespace ggswarm
