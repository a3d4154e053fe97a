// The ggswarm program: exit codes and messages for good and bad input.
#include <gtest/gtest.h>

#include <cstdio>

#include "test_util.h"

namespace ggswarm {
namespace {

using ggswarm::testing::TempDir;

struct CliResult {
  int code;
  std::string output;  // stdout and stderr
};

CliResult Cli(const std::string& args) {
  const std::string cmd = std::string(GGSWARM_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(Cli, MainJobEndToEnd) {
  TempDir t;
  CliResult r = Cli("synth " + t / "m.gguf" + " --preset micro --type Q8_0");
  ASSERT_EQ(r.code, 0) << r.output;
  r = Cli("fragment " + t / "m.gguf" + " " + t / "frags" + " --chunk-size 4K");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("fragments"), std::string::npos);
  r = Cli("verify " + t / "frags");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("OK"), std::string::npos);
  r = Cli("reassemble " + t / "frags" + " " + t / "back.gguf");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(ggswarm::testing::ReadBytes(t / "back.gguf"),
            ggswarm::testing::ReadBytes(t / "m.gguf"));
  r = Cli("inspect " + t / "frags" + " --json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"source\": \"fragments\""), std::string::npos);
  r = Cli("inspect " + t / "m.gguf");
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("blk.1.ffn_down.weight"), std::string::npos);
  // tensor: values printed and a .npy written with the shape slowest-first.
  r = Cli("tensor " + t / "frags" + " output_norm.weight --count 3");
  ASSERT_EQ(r.code, 0) << r.output;
  r = Cli("tensor " + t / "m.gguf" + " token_embd.weight --rows 1:2 --out " + t / "e.npy");
  ASSERT_EQ(r.code, 0) << r.output;
  auto npy = ggswarm::testing::ReadBytes(t / "e.npy");
  const std::string head(npy.begin(), npy.begin() + 128);
  EXPECT_NE(head.find("'shape': (300, 64)"), std::string::npos) << head;
  EXPECT_EQ(npy.size(), 128u + 300 * 64 * 4);
}

TEST(Cli, BadInputGivesAClearErrorAndNonZeroExit) {
  TempDir t;
  CliResult r = Cli("inspect " + t / "absent.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no such file"), std::string::npos) << r.output;
  ggswarm::testing::WriteBytes(t / "bad.gguf", {'G', 'G', 'U', 'F', 9, 0, 0, 0, 0, 0, 0, 0});
  r = Cli("fragment " + t / "bad.gguf" + " " + t / "out");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("unsupported GGUF version 9"), std::string::npos) << r.output;
  r = Cli("verify " + t.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("manifest.json"), std::string::npos) << r.output;
  r = Cli("synth " + t / "x.gguf" + " --preset nope");
  EXPECT_EQ(r.code, 1);
  r = Cli("fragment " + t / "bad.gguf" + " " + t / "out" + " --chunk-size 10Q");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("chunk-size"), std::string::npos);
  r = Cli("frobnicate");
  EXPECT_NE(r.code, 0);
}

TEST(Cli, VerifyListsBrokenFragmentsAndFails) {
  TempDir t;
  ASSERT_EQ(Cli("synth " + t / "m.gguf" + " --preset micro").code, 0);
  ASSERT_EQ(Cli("fragment " + t / "m.gguf" + " " + t / "f").code, 0);
  std::string victim;
  for (const auto& e : std::filesystem::directory_iterator(t / "f")) {
    if (e.path().string().find("_L1_ffn_up_") != std::string::npos) victim = e.path().string();
  }
  ASSERT_FALSE(victim.empty());
  std::filesystem::remove(victim);
  CliResult r = Cli("verify " + t / "f");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(std::filesystem::path(victim).filename().string() + ": missing"),
            std::string::npos)
      << r.output;
  r = Cli("reassemble " + t / "f" + " " + t / "x.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(std::filesystem::exists(t / "x.gguf"));
}

}  // namespace
}  // namespace ggswarm
