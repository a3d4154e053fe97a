// The ggswarm program: exit codes and messages for good and bad input.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace ggswarm {
namespace {

using ggswarm::testing::TempDir;

struct CliResult {
  int code;
  std::string output;  // stdout and stderr
};

// Runs `ggswarm ARGS`; "__timeout__ ARGS" runs it under a 30 s timeout (exit 124 if hung).
CliResult Cli(const std::string& args) {
  const std::string timeout = "__timeout__ ";
  const bool timed = args.rfind(timeout, 0) == 0;
  const std::string cmd = (timed ? "timeout 30 " : "") + std::string(GGSWARM_CLI) + " " +
                          (timed ? args.substr(timeout.size()) : args) + " 2>&1";
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

// A FIFO where a fragment, the header or the manifest should be: every command that reads it
// refuses it at once (a writer never comes). `timeout` turns a hang into exit 124.
TEST(Cli, FifosInAFragmentDirectoryAreRefusedNotWaitedOn) {
  TempDir t;
  ASSERT_EQ(Cli("synth " + t / "m.gguf" + " --preset micro").code, 0);
  std::string fragment;
  for (const std::string& victim :
       {std::string("fragment"), std::string("gguf_header.dat"), std::string("manifest.json")}) {
    SCOPED_TRACE(victim);
    std::filesystem::remove_all(t / "f");
    ASSERT_EQ(Cli("fragment " + t / "m.gguf" + " " + t / "f --no-torrent").code, 0);
    std::string path = t / ("f/" + victim);
    if (victim == "fragment") {
      for (const auto& e : std::filesystem::directory_iterator(t / "f"))
        if (e.path().string().find("_output_norm_") != std::string::npos) path = e.path();
    }
    std::filesystem::remove(path);
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
    for (const std::string& cmd :
         {"verify " + t / "f", "reassemble " + t / "f " + t / "x.gguf",
          "run " + t / "f -p hi -n 2 --temp 0", "tensor " + t / "f output_norm.weight"}) {
      SCOPED_TRACE(cmd);
      CliResult r = Cli("__timeout__ " + cmd);
      EXPECT_NE(r.code, 124) << "hung";
      EXPECT_NE(r.code, 0) << r.output;
      EXPECT_NE(r.output.find("not a regular file"), std::string::npos) << r.output;
    }
    EXPECT_FALSE(std::filesystem::exists(t / "x.gguf"));
  }
}

// Metadata keys and strings that are not UTF-8 are shown with U+FFFD in `inspect --json`,
// which stays valid JSON, instead of aborting.
TEST(Cli, InspectJsonOfTextThatIsNotUtf8) {
  TempDir t;
  std::string f = "GGUF";
  auto u32 = [&](uint32_t v) { f.append(reinterpret_cast<char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { f.append(reinterpret_cast<char*>(&v), 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    f += s;
  };
  u32(3);
  u64(0);  // tensors
  u64(2);  // metadata
  str("general.name");
  u32(8);
  str("bad \xff\xfe name");
  str("key\xc0");
  u32(4);
  u32(7);
  ggswarm::testing::WriteBytes(t / "u.gguf", {f.begin(), f.end()});
  CliResult r = Cli("inspect " + t / "u.gguf --json 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("bad \xef\xbf\xbd\xef\xbf\xbd name"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("key\xef\xbf\xbd"), std::string::npos) << r.output;
}

// Every numeric option outside its range is a usage error (exit 2) naming the option and
// the range; NaN included.
TEST(Cli, NumbersOutsideTheirRangeAreUsageErrors) {
  TempDir t;
  ASSERT_EQ(Cli("synth " + t / "m.gguf" + " --preset micro").code, 0);
  const std::pair<std::string, std::string> cases[] = {
      {"--repeat-penalty 0", "--repeat-penalty: must be a number above 0 up to 100, not 0"},
      {"-n -2", "--n-predict: must be a number from -1 to 1048576, not -2"},
      {"--temp nan", "--temp: must be a number from 0 to 100, not nan"},
      {"--temp -1", "--temp: must be a number from 0 to 100, not -1"},
      {"--top-p 2", "--top-p: must be a number from 0 to 1, not 2"},
      {"--min-p -0.5", "--min-p: must be a number from 0 to 1, not -0.5"},
      {"--ctx -5", "--ctx: must be a number from 0 to 1048576, not -5"},
      {"-t -1", "--threads: must be a number from 0 to 4096, not -1"},
      {"--top-k x", "--top-k: 'x' is not a number"},
  };
  for (const auto& [args, message] : cases) {
    CliResult r = Cli("run " + t / "m.gguf -p hi " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << "\n" << r.output;
  }
  CliResult r = Cli("serve " + t / "m.gguf --max-sessions 0");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--max-sessions: must be a number from 1 to 4096"), std::string::npos);
  r = Cli("bench " + t / "m.gguf -r 0");
  EXPECT_EQ(r.code, 2) << r.output;
  // -n -1 generates until the context is full.
  r = Cli("run " + t / "m.gguf -p hi -n -1 --ctx 12 --temp 0 --ignore-eos --json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"stop\": \"context_full\""), std::string::npos) << r.output;
}

TEST(Cli, VersionNamesTheCommit) {
  CliResult r = Cli("--version");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(r.output.rfind("ggswarm 0.", 0) == 0) << r.output;
  EXPECT_NE(r.output.find("(commit "), std::string::npos) << r.output;
}

// Whatever the build's flags (-march=native or the portable build), the kernels are chosen
// at run time from what the CPU has, read here from /proc/cpuinfo.
TEST(Cli, KernelsAreChosenFromTheCpuNotTheBuild) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  auto has = [&](const char* f) {
    return flags.find(" " + std::string(f) + " ") != std::string::npos;
  };
  const bool avx512 = has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq") &&
                      has("avx512_vnni") && has("f16c") && has("fma");
  const bool avx2 = has("avx2") && has("fma") && has("f16c");
  const std::string want = avx512 ? "avx512-vnni" : avx2 ? "avx2" : "scalar";
  ::unsetenv("GGSWARM_ISA");  // no request for less than the best
  TempDir t;
  ASSERT_EQ(Cli("synth " + t / "m.gguf" + " --preset micro").code, 0);
  CliResult r = Cli("bench " + t / "m.gguf -p 4 -n 2 -r 1 -t 1 --json 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"isa\": \"" + want + "\""), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ggswarm
