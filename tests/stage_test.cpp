// Pipelined inference as users run it: `ggswarm serve` stage processes on 127.0.0.1 and
// `ggswarm run swarm://…`, checked against a local run of the same model; and the stage's
// protocol checks, driven by a raw gRPC client.
#include "net/stage.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "api/bridge.h"
#include "arch_cases.h"
#include "base/sha256.h"
#include "gguf/gguf_file.h"
#include "h2_attack.h"
#include "model/ops.h"
#include "net/chain_verify.h"
#include "net/dht.h"
#include "net/stage_client.h"
#include "net/stage_tls.h"
#include "process.h"
#include "runtime/engine.h"
#include "scoped_isa.h"
#include "sse.h"
#include "stage.grpc.pb.h"
#include "test_util.h"

namespace ggswarm {
namespace {

namespace fs = std::filesystem;
namespace pb = ggswarm::stage::v1;
using testing::Process;
using testing::ScopedIsa;
using testing::SharedModels;
using testing::TempDir;
using testing::WaitUntil;

std::string Cli() { return GGSWARM_CLI; }

struct Result {
  int code;
  std::string out, err;
};

// Runs `ggswarm ARGS`, stdout and stderr apart.
Result Ggswarm(const std::string& args, const TempDir& t) {
  const std::string err = t / "stderr.txt";
  FILE* p = ::popen((Cli() + " " + args + " 2>" + err).c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  std::ifstream in(err);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, ss.str()};
}

// Starts `ggswarm` with `argv` and then the words of `args`; once its log says `ready`,
// returns the HOST:PORT that `address` (a pattern with one group) finds there.
std::string StartListening(std::unique_ptr<Process>& p, std::vector<std::string> argv,
                           const std::string& args, const std::string& log,
                           const std::string& ready, const std::string& address) {
  std::istringstream in(args);
  for (std::string a; in >> a;) argv.push_back(a);
  p = std::make_unique<Process>(argv, log);
  if (!p->WaitFor(ready, 60)) {
    ADD_FAILURE() << argv[1] << " did not start:\n" << p->Log();
    return "";
  }
  std::smatch m;
  const std::string l = p->Log();
  if (!std::regex_search(l, m, std::regex(address))) return "";
  return m[1];
}

// `ggswarm serve MODEL ARGS` on 127.0.0.1; returns HOST:PORT once it serves.
std::string Serve(std::unique_ptr<Process>& p, const std::string& model, const std::string& args,
                  const std::string& log) {
  return StartListening(p, {Cli(), "serve", model}, args, log, "serving ",
                        " at (127\\.0\\.0\\.1:[0-9]+) ");
}

// Resident memory of process `pid`, MiB.
long RssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  return -1;
}

// Waits until the stage at `address` knows `n` stages (itself included) that answer: the
// others' announcements have arrived.
bool WaitForStages(const std::string& address, size_t n) {
  return WaitUntil(30, [&] {
    auto l = net::ListStages(address, "", "");
    if (!l.ok()) return false;
    size_t answering = 0;
    for (const auto& s : *l) answering += s.answers;
    return answering >= n;
  });
}

std::vector<float> ReadLogits(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in).get<std::vector<float>>();
}

// A random model of 4 layers (TinyStories-like shapes from the `tiny` preset), made once.
class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    Result r = Ggswarm("synth " + *dir_ / "tiny.gguf" +
                           " --preset tiny --n-layer 4 --type Q8_0 --seed 11 --name tinypipe",
                       *dir_);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Tiny() { return *dir_ / "tiny.gguf"; }
  static TempDir* dir_;

  // Local and chained greedy runs of `model` agree on every token and, bit for bit, on the
  // prompt's logits: the stages run the same kernels on the same batches, and f32 hidden
  // states travel unchanged.
  void ExpectChainMatchesLocal(const std::string& model, const std::vector<std::string>& ranges,
                               const std::string& prompt) {
    TempDir t;
    std::vector<std::unique_ptr<Process>> stages(ranges.size());
    std::string first;
    for (size_t i = 0; i < ranges.size(); ++i) {
      const std::string peer = first.empty() ? "" : " --peer " + first;
      const std::string addr = Serve(stages[i], model, "--layers " + ranges[i] + peer,
                                     t / ("stage" + std::to_string(i) + ".log"));
      ASSERT_FALSE(addr.empty());
      if (first.empty()) first = addr;
    }
    // The last stage announced itself to the first; ask the first.
    const std::string args = " -p '" + prompt + "' -n 40 --temp 0 --ignore-eos --json";
    Result local = Ggswarm("run " + model + args + " --dump-logits " + t / "local.json", t);
    ASSERT_EQ(local.code, 0) << local.err;
    ASSERT_TRUE(WaitForStages(first, ranges.size()));  // the announcements are in
    Result remote = Ggswarm(
        "run swarm://" + first + "/" + args + " --dump-logits " + t / "remote.json --force", t);
    ASSERT_EQ(remote.code, 0) << remote.err;
    const auto l = nlohmann::json::parse(local.out), r = nlohmann::json::parse(remote.out);
    EXPECT_EQ(r["prompt_tokens"], l["prompt_tokens"]);
    EXPECT_EQ(r["generated_tokens"], l["generated_tokens"]);
    EXPECT_EQ(r["text"], l["text"]);
    EXPECT_EQ(ReadLogits(t / "remote.json"), ReadLogits(t / "local.json"));
  }
};
TempDir* Pipeline::dir_ = nullptr;

TEST_F(Pipeline, TwoAndThreeStagesGiveTheLocalTokensAndLogits) {
  ExpectChainMatchesLocal(Tiny(), {"0-1", "2-3"}, "a b c");
  ExpectChainMatchesLocal(Tiny(), {"0-0", "1-2", "3-3"}, "hello");
}

TEST_F(Pipeline, SharedStoriesModelsGiveTheLocalStory) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  for (const char* m : {"stories260K-f32", "stories260K-q8_0"}) {
    ExpectChainMatchesLocal(testing::SharedDir() + "/models/" + m + ".gguf", {"0-1", "2-4"},
                            "Once upon a time");
  }
}

// The other architectures (tests/arch_cases.h) need nothing of the stages or the fragments:
// the layers' extra tensors (Qwen2's biases, Qwen3's head norms, Gemma's post-norms) travel
// with their layers, a Llama 3's tied head and rope_freqs reach the stages that need them,
// and Gemma's scaled embedding and soft-capped logits stay with the first and last stage.
TEST_F(Pipeline, OtherArchitecturesAcrossStagesAndFromFragmentsGiveTheLocalText) {
  TempDir t;
  for (const auto& [name, flags] : testing::kArchCases) {
    const std::string arch = name;
    SCOPED_TRACE(arch);
    const std::string m = t / (arch + ".gguf");
    Result r = Ggswarm(
        "synth " + m + " --preset tiny --n-layer 4 --type Q8_0 --seed 5 " + std::string(flags), t);
    ASSERT_EQ(r.code, 0) << r.err;
    ExpectChainMatchesLocal(m, {"0-1", "2-3"}, "Once upon a time");
    const std::string frag = t / (arch + "-frag");
    r = Ggswarm("fragment " + m + " " + frag + " --chunk-size 64K --no-torrent", t);
    ASSERT_EQ(r.code, 0) << r.err;
    ExpectChainMatchesLocal(frag, {"0-2", "3-3"}, "Once upon a time");
  }
}

TEST_F(Pipeline, MissingLayersAndTokensAreNamed) {
  TempDir t;
  std::unique_ptr<Process> a, b;
  const std::string first = Serve(a, Tiny(), "--layers 0-1 --token s3cret", t / "a.log");
  ASSERT_FALSE(first.empty());
  // Layers 2-3 are served by nobody.
  Result r = Ggswarm("run swarm://" + first + "/ -p hi -n 4 --temp 0 --token s3cret", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no live peer serves layers 2-3 of tinypipe"), std::string::npos) << r.err;
  // Without the token, or with a wrong one: refused.
  r = Ggswarm("run swarm://" + first + "/ -p hi -n 4 --temp 0", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--token"), std::string::npos) << r.err;
  r = Ggswarm("run swarm://" + first + "/ -p hi -n 4 --temp 0 --token wrong", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
  // A model the swarm does not have; a peer that is not there.
  r = Ggswarm("run swarm://" + first + "/no-such-model -p hi --token s3cret", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("serves no-such-model"), std::string::npos) << r.err;
  r = Ggswarm("run swarm://127.0.0.1:1/ -p hi", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no peer answers"), std::string::npos) << r.err;
  // A layer range the model does not have.
  r = Ggswarm("serve " + Tiny() + " --layers 2-9", t);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("which has layers 0-3"), std::string::npos) << r.err;
}

TEST_F(Pipeline, ABridgeOnASwarmAddressWritesWhatALocalOneWrites) {
  TempDir t;
  std::unique_ptr<Process> a, b;
  const std::string first = Serve(a, Tiny(), "--layers 0-2", t / "a.log");
  ASSERT_FALSE(Serve(b, Tiny(), "--layers 3-3 --peer " + first, t / "b.log").empty());
  ASSERT_TRUE(WaitForStages(first, 2));
  Bridge local(Tiny());
  Bridge swarm("swarm://" + first + "/tinypipe");
  const GenerateParams greedy{.max_tokens = 24, .temperature = 0, .ignore_eos = true};
  const std::string want = local.generate("one two", greedy);
  EXPECT_EQ(swarm.generate("one two", greedy), want);
  EXPECT_EQ(swarm.generate("one two", greedy), want);  // each call starts afresh
  EXPECT_THROW(Bridge("swarm://127.0.0.1:1/x"), Error);
}

// Stages given only an info-hash fetch their own fragments from a BitTorrent peer (the
// first with the embedding, the last with the head) and serve from them.
TEST_F(Pipeline, StagesFetchOnlyTheirFragmentsFromTheSwarm) {
  TempDir t;
  Result f = Ggswarm("fragment " + Tiny() + " " + t / "frag --chunk-size 64K", t);
  ASSERT_EQ(f.code, 0) << f.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(f.out, m, std::regex("info-hash ([0-9a-f]{64})")));
  const std::string ih = m[1];
  Process seed({Cli(), "peer", "--seed", t / "frag"}, t / "seed.log");
  ASSERT_TRUE(seed.WaitFor("seeding ", 30)) << seed.Log();
  const std::string sl = seed.Log();
  ASSERT_TRUE(std::regex_search(sl, m, std::regex("listening on (127\\.0\\.0\\.1:[0-9]+)")));
  const std::string bt = m[1];
  std::unique_ptr<Process> a, b;
  const std::string first =
      Serve(a, ih, "--fetch-from " + bt + " --cache " + t / "c0" + " --layers 0-1", t / "a.log");
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(
      Serve(b, ih, "--fetch-from " + bt + " --cache " + t / "c1" + " --layers 2-3 --peer " + first,
            t / "b.log")
          .empty());
  for (const char* c : {"c0", "c1"}) {
    Result v = Ggswarm("verify " + t / c, t);
    EXPECT_EQ(v.code, 0) << v.out;
    EXPECT_NE(v.out.find("absent, as selected"), std::string::npos) << v.out;
  }
  ASSERT_TRUE(WaitForStages(first, 2));
  const std::string args = " -p 'from the swarm' -n 24 --temp 0 --ignore-eos";
  Result local = Ggswarm("run " + Tiny() + args, t);
  Result remote = Ggswarm("run swarm://" + first + "/" + args, t);
  ASSERT_EQ(remote.code, 0) << remote.err;
  EXPECT_EQ(remote.out, local.out);
}

// Two clients at once on one chain (a session each on every stage), and a chat.
TEST_F(Pipeline, ConcurrentSessionsAndChatGiveTheLocalText) {
  TempDir t;
  std::unique_ptr<Process> a, b;
  const std::string first = Serve(a, Tiny(), "--layers 0-1 -t 1", t / "a.log");
  ASSERT_FALSE(Serve(b, Tiny(), "--layers 2-3 -t 1 --peer " + first, t / "b.log").empty());
  ASSERT_TRUE(WaitForStages(first, 2));
  // The swarm as a peer sees it: both stages, each answering.
  Result st = Ggswarm("stages swarm://" + first + "/", t);
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_TRUE(
      std::regex_search(st.out, std::regex("tinypipe +0-1 +" + first + " .* ms \\+embedding")))
      << st.out;
  // Each with the kernels it computes with (this process's: the stages run on this CPU).
  EXPECT_TRUE(std::regex_search(
      st.out, std::regex("tinypipe +0-1 +" + first + " .* " + model::KernelsInUse() + " ")))
      << st.out;
  EXPECT_TRUE(
      std::regex_search(st.out, std::regex("tinypipe +2-3 +127\\.0\\.0\\.1:[0-9]+ .* ms \\+head")))
      << st.out;
  const std::string args = " -p 'two at once' -n 64 --temp 0 --ignore-eos";
  Result local = Ggswarm("run " + Tiny() + args, t);
  ASSERT_EQ(local.code, 0) << local.err;
  std::vector<std::unique_ptr<Process>> runs;
  for (int i = 0; i < 3; ++i) {
    runs.push_back(std::make_unique<Process>(
        std::vector<std::string>{Cli(), "run", "swarm://" + first + "/", "-p", "two at once", "-n",
                                 "64", "--temp", "0", "--ignore-eos"},
        t / ("run" + std::to_string(i) + ".out"), t / ("run" + std::to_string(i) + ".err")));
  }
  for (auto& r : runs) {
    ASSERT_EQ(r->Wait(60), 0);
    EXPECT_EQ(r->Log(), local.out);
  }
  const std::string chat = " -n 12 --temp 0 --chat-template chatml < " + t / "in.txt";
  std::ofstream(t / "in.txt") << "hello there\nand again\n";
  Result lc = Ggswarm("chat " + Tiny() + chat, t);
  Result rc = Ggswarm("chat swarm://" + first + "/" + chat, t);
  ASSERT_EQ(lc.code, 0) << lc.err;
  ASSERT_EQ(rc.code, 0) << rc.err;
  EXPECT_EQ(rc.out, lc.out);
  EXPECT_FALSE(lc.out.empty());
}

TEST_F(Pipeline, KvMemoryIsLimited) {
  TempDir t;
  std::unique_ptr<Process> a;
  // 4 layers × 512 positions × 128 (2 heads × 64) × K and V × 2 bytes = 1 MiB a session.
  const std::string addr = Serve(a, Tiny(), "--ctx 512 --max-kv-mb 1", t / "a.log");
  ASSERT_FALSE(addr.empty());
  auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  pb::OpenSessionRequest req;
  pb::OpenSessionReply rep;
  grpc::ClientContext c1, c2, c3;
  EXPECT_TRUE(stub->OpenSession(&c1, req, &rep).ok());
  auto full = stub->OpenSession(&c2, req, &rep);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(full.error_message().find("KV memory is full"), std::string::npos)
      << full.error_message();
  req.set_n_ctx(16);  // a smaller session still fits? No: the first took all of it.
  EXPECT_EQ(stub->OpenSession(&c3, req, &rep).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// A stage of a model with a sliding window counts its local layers' KV cache at their window
// (4 + 511 cells for Forwards of up to 512 positions), not at the context, and refuses to go
// back to where the window's keys are gone, saying so; back to 0 works.
TEST_F(Pipeline, ASlidingWindowStageKeepsAndCountsOnlyTheWindow) {
  TempDir t;
  const std::string m = t / "gemma.gguf";
  Result r =
      Ggswarm("synth " + m + " --preset tiny --n-layer 4 --arch gemma3 --vocab gemma --swa 4 " +
                  "--swa-pattern 2 --type Q8_0 --seed 5",
              t);
  ASSERT_EQ(r.code, 0) << r.err;
  // 4 layers, k and v of 128 f16 values a cell: 2 global × 2048 + 2 local × 515 cells is
  // 2.5 MiB a session (4 MiB if every layer kept the context): two fit in 6 MiB, not three.
  std::unique_ptr<Process> a;
  const std::string addr = Serve(a, m, "--ctx 2048 --max-kv-mb 6", t / "a.log");
  ASSERT_FALSE(addr.empty());
  auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  pb::OpenSessionRequest open;
  pb::OpenSessionReply s1, s2, s3;
  grpc::ClientContext c1, c2, c3;
  ASSERT_TRUE(stub->OpenSession(&c1, open, &s1).ok());
  ASSERT_TRUE(stub->OpenSession(&c2, open, &s2).ok());
  const grpc::Status third = stub->OpenSession(&c3, open, &s3);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.error_message().find("needs 2 MiB more"), std::string::npos)
      << third.error_message();
  // 600 positions (the window slides), then back to 10: refused; back to 0: served.
  auto forward = [&](uint32_t position, uint32_t n) {
    pb::ForwardRequest req;
    req.set_session_id(s1.session_id());
    req.set_position(position);
    req.set_n(n);
    for (uint32_t i = 0; i < n; ++i) req.add_tokens(5 + (position + i) % 200);
    pb::ForwardReply rep;
    grpc::ClientContext c;
    return stub->Forward(&c, req, &rep);
  };
  ASSERT_TRUE(forward(0, 512).ok());
  ASSERT_TRUE(forward(512, 88).ok());
  const grpc::Status back = forward(10, 1);
  EXPECT_EQ(back.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(back.error_message().find("sliding-window layers keep"), std::string::npos)
      << back.error_message();
  EXPECT_TRUE(forward(599, 1).ok());  // within the window
  EXPECT_TRUE(forward(0, 3).ok());
  EXPECT_TRUE(a->running());
}

// A random model big enough that generation takes seconds: a stage can be killed mid-way.
std::string SlowModel(const TempDir& t) {
  const std::string m = t / "slow.gguf";
  Result r = Ggswarm("synth " + m +
                         " --preset tinyllama-1.1b --n-layer 3 --n-vocab 4000 --type Q8_0 "
                         "--seed 5 --name slowpipe",
                     t);
  EXPECT_EQ(r.code, 0) << r.err;
  return m;
}

TEST_F(Pipeline, AKilledStageWithAReplicaLeavesTheTextUnchanged) {
  TempDir t;
  const std::string model = SlowModel(t);
  const std::string args = " -p 'the swarm' -n 160 --temp 0 --ignore-eos -t 1";
  Result local = Ggswarm("run " + model + args, t);
  ASSERT_EQ(local.code, 0) << local.err;

  std::unique_ptr<Process> s0, s1, s1b, s2;
  const std::string a0 = Serve(s0, model, "--layers 0-0 -t 1", t / "s0.log");
  ASSERT_FALSE(a0.empty());
  const std::string a1 = Serve(s1, model, "--layers 1-1 -t 1 --peer " + a0, t / "s1.log");
  const std::string a1b = Serve(s1b, model, "--layers 1-1 -t 1 --peer " + a0, t / "s1b.log");
  const std::string a2 = Serve(s2, model, "--layers 2-2 -t 1 --peer " + a0, t / "s2.log");
  ASSERT_FALSE(a1.empty() || a1b.empty() || a2.empty());
  ASSERT_TRUE(WaitForStages(a0, 4));

  Process run({Cli(), "run", "swarm://" + a0 + "/", "-p", "the swarm", "-n", "160", "--temp", "0",
               "--ignore-eos"},
              t / "run.out", t / "run.err");
  // Once some text has streamed, kill whichever replica of layer 1 the chain uses.
  WaitUntil(60, [&] { return run.Log().size() >= 40 || !run.running(); });
  ASSERT_TRUE(run.running()) << "generation ended before a stage could be killed";
  // Kill the replica of layer 1 that the chain uses (the one with a session); the other
  // takes over.
  Process* used = s1->Log().find("session ") != std::string::npos ? s1.get() : s1b.get();
  ASSERT_NE(used->Log().find("session "), std::string::npos);
  used->Kill(SIGKILL);
  ASSERT_EQ(run.Wait(120), 0) << run.Log() << "\n" << std::ifstream(t / "run.err").rdbuf();
  std::stringstream err;
  err << std::ifstream(t / "run.err").rdbuf();
  EXPECT_EQ(run.Log(), local.out);
  EXPECT_NE(err.str().find("rebuilding the chain and replaying"), std::string::npos) << err.str();
  // The replay: the prompt as it was sent, the generated tokens in runs of up to 31 (a Q8_0
  // model's ExactRun), not one call each.
  std::smatch m;
  const std::string e = err.str();
  ASSERT_TRUE(
      std::regex_search(e, m, std::regex("(\\d+) tokens of 1 sequences replayed in (\\d+) steps")))
      << e;
  const int tokens = std::stoi(m[1]), steps = std::stoi(m[2]);
  EXPECT_GT(tokens, 10);
  EXPECT_LE(steps, 1 + (tokens + 30) / 31) << e;
}

// A swarm found through a private DHT on 127.0.0.1 (no --peer anywhere): stages announce
// themselves with `serve --dht`, joining through the first one; a client that knows only the
// model's id and one DHT node builds the chain, ignores announcements that do not answer Hello
// with the model (another model's stage, a dead port, a port that never answers: not waited
// for), and when the stage in use stops answering finds its replica through the DHT without
// asking it again: the text is the local one.
TEST_F(Pipeline, ADhtDirectoryFindsTheChainAndAReplacement) {
  TempDir t;
  const std::string model = SlowModel(t);
  const std::string args = " -p 'the swarm' -n 160 --temp 0 --ignore-eos -t 1";
  Result local = Ggswarm("run " + model + args, t);
  ASSERT_EQ(local.code, 0) << local.err;
  std::ifstream f(model, std::ios::binary);
  const std::string bytes(std::istreambuf_iterator<char>(f), {});
  const std::string id =
      ToHex(Sha256Of({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));

  std::unique_ptr<Process> s0, s1, s1b, s2, other;
  ASSERT_FALSE(Serve(s0, model, "--layers 0-0 -t 1 --dht", t / "s0.log").empty());
  ASSERT_TRUE(s0->WaitFor("DHT node on ", 30));
  std::smatch m;
  const std::string l0 = s0->Log();
  ASSERT_TRUE(std::regex_search(l0, m, std::regex("DHT node on (127\\.0\\.0\\.1:[0-9]+)")));
  const std::string d0 = m[1];
  EXPECT_NE(l0.find("dht://" + id), std::string::npos) << l0;
  const std::string join = " -t 1 --dht --dht-bootstrap " + d0;
  const std::string a1 = Serve(s1, model, "--layers 1-1" + join, t / "s1.log");
  const std::string a1b = Serve(s1b, model, "--layers 1-1" + join, t / "s1b.log");
  const std::string a2 = Serve(s2, model, "--layers 2-2" + join, t / "s2.log");
  ASSERT_FALSE(a1.empty() || a1b.empty() || a2.empty());
  ASSERT_TRUE(s2->WaitFor("DHT node on ", 30));
  const std::string l2 = s2->Log();
  ASSERT_TRUE(std::regex_search(l2, m, std::regex("DHT node on (127\\.0\\.0\\.1:[0-9]+)")));
  const std::string d2 = m[1];
  // Announcements under the model's key that are not its stages: a stage of another model,
  // and a port where nothing listens.
  const std::string impostor = Serve(other, Tiny(), "--layers 0-0 -t 1", t / "other.log");
  ASSERT_FALSE(impostor.empty());
  auto liar = net::DhtNode::Start({"", {d0}});
  ASSERT_TRUE(liar.ok()) << liar.status().ToString();
  std::unique_ptr<Process> closed;
  const std::string dead = Serve(closed, Tiny(), "--layers 0-0 -t 1", t / "closed.log");
  ASSERT_FALSE(dead.empty());
  closed->Kill(SIGKILL);
  closed->Wait(10);
  // And an address that takes connections but never answers (as a host that stopped does).
  const int quiet_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in qa{};
  qa.sin_family = AF_INET;
  qa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t qlen = sizeof qa;
  ASSERT_EQ(::bind(quiet_fd, reinterpret_cast<sockaddr*>(&qa), sizeof qa), 0);
  ASSERT_EQ(::listen(quiet_fd, 64), 0);
  ::getsockname(quiet_fd, reinterpret_cast<sockaddr*>(&qa), &qlen);
  const int quiet_port = ntohs(qa.sin_port);
  const std::string quiet = "127.0.0.1:" + std::to_string(quiet_port);

  // The client knows one DHT node (not the first) and the model's id.
  net::ChainOptions co;
  ASSERT_TRUE(net::ParseSwarmUri("dht://" + id, &co));
  co.dht_bootstrap = {d2};
  ASSERT_TRUE(net::StartDht(&co).ok());
  const auto port_of = [](const std::string& a) { return std::stoi(a.substr(a.rfind(':') + 1)); };
  std::vector<net::StageInfo> listed;
  ASSERT_TRUE(WaitUntil(60,
                        [&] {
                          (*liar)->Announce(net::ModelKey(id), port_of(impostor));
                          (*liar)->Announce(net::ModelKey(id), port_of(dead));
                          (*liar)->Announce(net::ModelKey(id), quiet_port);
                          auto l = net::ListStages(co);
                          if (!l.ok()) return false;
                          listed = *l;
                          return listed.size() == 4;
                        }))
      << [&] {
           std::string m = std::to_string(listed.size()) + " stages listed:";
           for (const auto& st : listed)
             m += " " + st.address + " (" + std::to_string(st.first_layer) + ")";
           return m + "; stages at " + a1 + " " + a1b + " " + a2;
         }();
  for (const auto& st : listed) {
    EXPECT_EQ(st.model_id, id);
    EXPECT_NE(st.address, impostor);
    EXPECT_NE(st.address, dead);
    EXPECT_TRUE(st.answers);
  }
  // The liar's announcements did land: the DHT returns them, and only Hello tells them apart.
  const net::DhtKey key = net::ModelKey(id);
  const auto found = co.dht_node->GetPeers(std::span<const net::DhtKey>(&key, 1))[0];
  std::set<int> ports;
  for (const auto& e : found) ports.insert(e.port);
  EXPECT_TRUE(ports.count(port_of(impostor)) && ports.count(port_of(dead)) &&
              ports.count(quiet_port))
      << found.size();

  Process run({Cli(), "run", "dht://" + id, "--dht-bootstrap", d2, "-p", "the swarm", "-n", "160",
               "--temp", "0", "--ignore-eos"},
              t / "run.out", t / "run.err");
  WaitUntil(60, [&] { return run.Log().size() >= 40 || !run.running(); });
  ASSERT_TRUE(run.running()) << "generation ended before a stage could be killed:\n"
                             << run.Log() << "\n"
                             << std::ifstream(t / "run.err").rdbuf();
  const bool first = s1->Log().find("session ") != std::string::npos;
  Process* used = first ? s1.get() : s1b.get();
  ASSERT_NE(used->Log().find("session "), std::string::npos);
  // The stage stops answering (its port stays open and its announcement on the DHT stays):
  // the chain finds it silent, and the rebuild does not ask it again (each Hello to it would
  // wait for its whole deadline).
  used->Kill(SIGSTOP);
  const int code = run.Wait(120);
  used->Kill(SIGKILL);
  ASSERT_EQ(code, 0) << run.Log() << "\n" << std::ifstream(t / "run.err").rdbuf();
  std::stringstream err;
  err << std::ifstream(t / "run.err").rdbuf();
  EXPECT_EQ(run.Log(), local.out);
  EXPECT_NE(err.str().find("rebuilding the chain and replaying"), std::string::npos) << err.str();
  const std::string e = err.str();
  const size_t at = e.find("found dead, not asked again: ");
  ASSERT_NE(at, std::string::npos) << e;
  const std::string line = e.substr(at, e.find('\n', at) - at);
  EXPECT_NE(line.find(first ? a1 : a1b), std::string::npos) << line;
  // The address that never answers was not waited for: the stages that answered covered
  // the layers, and its Hello was let go before its deadline (never taken for dead).
  bool let_go = false;
  for (size_t cut = e.find("not waiting for announced "); cut != std::string::npos;
       cut = e.find("not waiting for announced ", cut + 1))
    let_go = let_go || e.substr(cut, e.find('\n', cut) - cut).find(quiet) != std::string::npos;
  EXPECT_TRUE(let_go) << e;
  EXPECT_EQ(e.find("announced stage " + quiet + " does not answer"), std::string::npos) << e;
  ::close(quiet_fd);
}

// Honest computation: a stage that perturbs what it computes (fault injection, in-process
// stages) is caught by a client with --verify-fraction — its output disagrees with two other
// stages serving the same layers — banned and routed around: the text is the honest one.
// With only one other stage to compare with, the disagreement is an error naming both.
// An in-process stage of layers [first, end) of `model` (1 thread), output perturbed by
// `perturb` (StageOptions::perturb_for_tests), joining `peer`; kept in `stages`. Returns its
// HOST:PORT, or "" (with a failure) when it does not start.
std::string StartStage(std::vector<std::unique_ptr<net::StageServer>>& stages,
                       const std::string& model, int first, int end, float perturb,
                       const std::string& peer, int max_batch = 512) {
  net::StageOptions so;
  so.max_batch = max_batch;
  so.model_path = model;
  so.first_layer = first;
  so.end_layer = end;
  so.threads = 1;
  so.perturb_for_tests = perturb;
  if (!peer.empty()) so.peers = {peer};
  auto s = net::StageServer::Start(so, nullptr);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return std::string();
  stages.push_back(std::move(*s));
  return "127.0.0.1:" + std::to_string(stages.back()->port());
}

// A random model of the tiny preset with `flags` (layers, type, seed), at t/m.gguf.
std::string TinyModelFile(const TempDir& t, const std::string& flags) {
  const std::string model = t / "m.gguf";
  Result r = Ggswarm("synth " + model + " --preset tiny " + flags, t);
  EXPECT_EQ(r.code, 0) << r.err;
  return model;
}

TEST_F(Pipeline, ADishonestStageIsCaughtBannedAndRoutedAround) {
  TempDir t;
  const std::string model = SlowModel(t);
  const std::string args = " -p 'the swarm' -n 48 --temp 0 --ignore-eos";
  Result local = Ggswarm("run " + model + args + " -t 1", t);
  ASSERT_EQ(local.code, 0) << local.err;
  std::vector<std::unique_ptr<net::StageServer>> stages;
  auto start = [&](int first, float perturb, const std::string& peer) {
    return StartStage(stages, model, first, first + 1, perturb, peer);
  };
  const std::string a0 = start(0, 0, "");
  ASSERT_FALSE(a0.empty());
  const std::string honest = start(1, 0, a0), other = start(1, 0, a0), liar = start(1, 0.5f, a0);
  ASSERT_FALSE(start(2, 0, a0).empty());
  ASSERT_TRUE(WaitForStages(a0, 5));

  Result run = Ggswarm("run swarm://" + a0 + "/" + args + " --verify-fraction 0.5", t);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, local.out);
  EXPECT_NE(run.err.find("stage " + liar + " (layers 1-1) disagrees with "), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("banned for this session"), std::string::npos) << run.err;
  for (const std::string& good : {honest, other})
    EXPECT_EQ(run.err.find("stage " + good + " (layers 1-1) disagrees"), std::string::npos)
        << run.err;

  // A chain that starts on the liar (preferred): its prompt's logits are checked, the liar
  // is banned, and the step is done again on a chain without it, whose logits are bit for
  // bit a local engine's.
  {
    net::ChainOptions co;
    co.address = a0;
    co.verify_fraction = 1;
    co.prefer = {liar};
    auto chain = net::SwarmChain::Connect(co);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    ASSERT_EQ((*chain)->Route()[1].address, liar);
    const std::vector<int32_t> prompt = (*chain)->tokenizer().Encode("the swarm", true);
    std::vector<float> got, want;
    ASSERT_TRUE((*chain)->Eval(prompt, &got).ok());
    EXPECT_EQ((*chain)->banned(), std::vector<std::string>{liar});
    EXPECT_NE((*chain)->Route()[1].address, liar);
    EXPECT_EQ((*chain)->recoveries(), 1);
    runtime::EngineOptions eo;
    eo.threads = 1;
    auto engine = runtime::Engine::Open(model, eo);
    ASSERT_TRUE(engine.ok());
    ASSERT_TRUE((*engine)->Eval(prompt, &want).ok());
    EXPECT_EQ(got, want);
  }

  // The liar and one honest stage left: no third to decide.
  stages[2]->Shutdown();
  ASSERT_TRUE(WaitUntil(30, [&] {
    auto l = net::ListStages(a0, "", "");
    if (!l.ok()) return false;
    size_t answering = 0;
    for (const auto& st : *l) answering += st.answers;
    return answering == 4;
  }));
  Result two = Ggswarm("run swarm://" + a0 + "/" + args + " --verify-fraction 0.5", t);
  EXPECT_NE(two.code, 0) << two.out;
  EXPECT_NE(two.err.find("no third stage serves those layers to say which one is right"),
            std::string::npos)
      << two.err;
  EXPECT_NE(two.err.find(liar), std::string::npos) << two.err;
}

// `ggswarm server swarm://ADDRESS/ ARGS` on a free port; its base address once it listens.
std::string ServeHttp(std::unique_ptr<Process>& p, const std::string& swarm,
                      const std::string& args, const std::string& log) {
  return StartListening(p, {Cli(), "server", "swarm://" + swarm + "/", "--port", "0"}, args, log,
                        "listening on http://", "listening on http://(127\\.0\\.0\\.1:[0-9]+)");
}

// What `ggswarm run MODEL -p PROMPT -n N --temp 0 --ignore-eos` writes as the generated text.
std::string LocalText(const std::string& model, const std::string& prompt, int n,
                      const TempDir& t) {
  Result r = Ggswarm("run " + model + " -p '" + prompt + "' -n " + std::to_string(n) +
                         " --temp 0 --ignore-eos --json",
                     t);
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? nlohmann::json::parse(r.out)["text"].get<std::string>() : "";
}

// n greedy completions of `prompts`, all at once, one client thread each; the texts (empty for
// a request that failed, with its answer in *errors).
std::vector<std::string> CompleteAtOnce(const std::string& base,
                                        const std::vector<std::string>& prompts, int n, bool stream,
                                        std::vector<std::string>* errors) {
  std::vector<std::string> texts(prompts.size());
  errors->assign(prompts.size(), "");
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      const size_t colon = base.rfind(':');
      httplib::Client c(base.substr(0, colon), std::stoi(base.substr(colon + 1)));
      c.set_read_timeout(400);  // a bound for a hang: an ASan build generates slowly
      const nlohmann::json body = {{"prompt", prompts[i]},
                                   {"max_tokens", n},
                                   {"temperature", 0},
                                   {"ignore_eos", true},
                                   {"stream", stream}};
      auto res = c.Post("/v1/completions", body.dump(), "application/json");
      if (!res || res->status != 200) {
        (*errors)[i] = res ? res->body : "no answer";
        return;
      }
      texts[i] = stream ? testing::StreamText(res->body, false)
                        : nlohmann::json::parse(res->body)["choices"][0]["text"].get<std::string>();
    });
  for (auto& th : threads) th.join();
  return texts;
}

// 8 streaming clients of `ggswarm server swarm://…` at once, over a chain of 2 stages (their
// sequences in 2 lanes of 4, each step of a lane one ForwardMany per stage): each gets the
// text a local `ggswarm run` gives for its prompt; and one prompt again comes from the cache.
TEST_F(Pipeline, EightStreamingClientsOfASwarmServerGetTheLocalText) {
  TempDir t;
  std::unique_ptr<Process> a, b, server;
  const std::string first = Serve(a, Tiny(), "--layers 0-1 -t 1", t / "a.log");
  ASSERT_FALSE(Serve(b, Tiny(), "--layers 2-3 -t 1 --peer " + first, t / "b.log").empty());
  ASSERT_TRUE(WaitForStages(first, 2));
  const std::string base = ServeHttp(server, first, "--parallel 8", t / "server.log");
  ASSERT_FALSE(base.empty());
  {  // /v1/swarm: both stages, no gap, 2 lanes of 4 sequences through both
    httplib::Client c(base.substr(0, base.rfind(':')), std::stoi(base.substr(base.rfind(':') + 1)));
    auto r = c.Get("/v1/swarm");
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    const auto j = nlohmann::json::parse(r->body);
    EXPECT_EQ(j["model"]["n_layer"], 4);
    EXPECT_EQ(j["model"]["name"], "tinypipe");
    ASSERT_EQ(j["stages"].size(), 2u) << j.dump();
    EXPECT_EQ(j["stages"][0]["address"], first);
    EXPECT_EQ(j["stages"][0]["first_layer"], 0);
    EXPECT_EQ(j["stages"][1]["end_layer"], 4);
    EXPECT_EQ(j["stages"][1]["kernels"], model::KernelsInUse());
    EXPECT_TRUE(j["gaps"].empty());
    ASSERT_EQ(j["chains"].size(), 2u);
    for (const auto& ch : j["chains"]) {
      EXPECT_EQ(ch["sequences"], 4);
      ASSERT_EQ(ch["hops"].size(), 2u);
      EXPECT_EQ(ch["hops"][0]["address"], first);
    }
    auto page = c.Get("/swarm");
    ASSERT_TRUE(page && page->status == 200);
    EXPECT_NE(page->body.find("<title>ggswarm swarm</title>"), std::string::npos);
  }
  std::vector<std::string> prompts;
  for (int i = 0; i < 8; ++i)
    prompts.push_back("client " + std::to_string(i) + std::string(i, '!'));
  std::vector<std::string> errors;
  const auto got = CompleteAtOnce(base, prompts, 40, true, &errors);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(got[i], LocalText(Tiny(), prompts[i], 40, t)) << i;
    EXPECT_FALSE(got[i].empty());
  }
  // A prompt again: its slot kept its cache (and its sessions on the stages), so all of the
  // prompt but the last token is reused — the stages cut their caches back to it at the next
  // step — and the text is the same.
  httplib::Client c(base.substr(0, base.rfind(':')), std::stoi(base.substr(base.rfind(':') + 1)));
  const nlohmann::json again = {
      {"prompt", prompts[5]}, {"max_tokens", 40}, {"temperature", 0}, {"ignore_eos", true}};
  auto res = c.Post("/v1/completions", again.dump(), "application/json");
  ASSERT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
  const auto j = nlohmann::json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["text"], got[5]);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"],
            j["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_TRUE(server->running());
}

// 8 sequences through a 2-stage chain served by `ggswarm server swarm://…`; a replica of the
// second stage comes up, and the one in use is killed mid-generation: every text is the
// local one, and no request fails.
TEST_F(Pipeline, AKilledStageUnderLoadLeavesEveryTextUnchanged) {
  TempDir t;
  const std::string model = SlowModel(t);
  std::unique_ptr<Process> s0, s1, s1b, server;
  const std::string a0 = Serve(s0, model, "--layers 0-1 -t 1", t / "s0.log");
  ASSERT_FALSE(a0.empty());
  ASSERT_FALSE(Serve(s1, model, "--layers 2-2 -t 1 --peer " + a0, t / "s1.log").empty());
  ASSERT_TRUE(WaitForStages(a0, 2));
  const std::string base = ServeHttp(server, a0, "--parallel 8", t / "server.log");
  ASSERT_FALSE(base.empty());
  // The server's chains are built; now the replica, which none of them uses yet.
  ASSERT_FALSE(Serve(s1b, model, "--layers 2-2 -t 1 --peer " + a0, t / "s1b.log").empty());
  ASSERT_TRUE(WaitForStages(a0, 3));
  std::vector<std::string> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back("load " + std::to_string(i));
  constexpr int kTokens = 160;
  std::vector<std::string> errors, got;
  std::thread clients([&] { got = CompleteAtOnce(base, prompts, kTokens, false, &errors); });
  // Once a good part of the text is out (the server counts it), the stage goes.
  httplib::Client c(base.substr(0, base.rfind(':')), std::stoi(base.substr(base.rfind(':') + 1)));
  auto generated = [&] {
    auto m = c.Get("/metrics");
    if (!m || m->status != 200) return 0L;
    const size_t at = m->body.find("\nggswarm_generated_tokens_total ");
    return at == std::string::npos ? 0L : std::stol(m->body.substr(at + 32));
  };
  const bool mid = WaitUntil(60, [&] { return generated() >= 8 * kTokens / 4; });
  const long when = generated();
  s1->Kill(SIGKILL);
  clients.join();
  ASSERT_TRUE(mid);
  EXPECT_LT(when, 8 * kTokens) << "generation ended before the stage was killed";
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(got[i], LocalText(model, prompts[i], kTokens, t)) << i;
  }
  EXPECT_NE(server->Log().find("rebuilding the chain and replaying"), std::string::npos)
      << server->Log();
  // Each lane's sequences were replayed side by side: as many steps as one sequence's calls
  // (its prompt, then its generated tokens 31 at a time), not one sequence after another.
  const std::string log = server->Log();
  const std::regex rebuilt("(\\d+) tokens of (\\d+) sequences replayed in (\\d+) steps");
  int most_seqs = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), rebuilt);
       it != std::sregex_iterator(); ++it) {
    most_seqs = std::max(most_seqs, std::stoi((*it)[2]));
    EXPECT_LE(std::stoi((*it)[3]), 1 + (kTokens + 30) / 31) << (*it)[0];
  }
  EXPECT_GE(most_seqs, 2) << log;
}

// Greedy tokens from `eval` (a chain or a local engine): the prompt, then n one at a time.
template <typename Eval>
Status Greedy(Eval& e, const std::vector<int32_t>& prompt, int n, std::vector<int32_t>* out,
              const std::function<void(int)>& each = {}) {
  std::vector<float> logits;
  GGSWARM_RETURN_IF_ERROR(e.Eval(prompt, &logits));
  for (int i = 0; i < n; ++i) {
    const int32_t t =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out->push_back(t);
    if (each) each(i);
    GGSWARM_RETURN_IF_ERROR(e.Eval(std::span<const int32_t>(&t, 1), &logits));
  }
  return Status::Ok();
}

// Stages that push to each other (the default), with --token: the token travels on every
// hop. The stage in use stops answering in the middle of the generation (SIGSTOP): it is
// named within the call deadline (3 s), or — with the default deadline of 60 s — by the
// keepalive pings (kKeepaliveMs, kKeepaliveTimeoutMs) long before it; the chain moves to the
// replica, and the tokens are those of a local run; then the stopped stage is killed, and
// nothing hangs.
TEST_F(Pipeline, AStageThatStopsAnsweringMidPushIsNamedWithinTheDeadline) {
  TempDir t;
  const std::string model = SlowModel(t);
  const std::vector<int32_t> prompt = {1, 450, 2381, 263, 931};
  constexpr int kTokens = 120;
  std::vector<int32_t> want;
  {
    auto local = runtime::Engine::Open(model, {.threads = 1});
    ASSERT_TRUE(local.ok()) << local.status().ToString();
    ASSERT_TRUE(Greedy(**local, prompt, kTokens, &want).ok());
  }
  // The deadline, what the failure says, and how long the test waits for the generation:
  // in the keepalive case less than the call deadline (60 s), which would end a wait that
  // keepalive failed to end, and more than the ~12 s the case takes alone in the ASan build
  // (30 s was too little once, with other tests running beside it).
  struct Case {
    double deadline_s;
    const char* failed;
    double within_s;
  };
  for (const Case& k : {Case{3, "DEADLINE_EXCEEDED", 60}, Case{0, "UNAVAILABLE", 50}}) {
    SCOPED_TRACE(k.failed);
    const std::string pre = std::string(k.failed) + "-";
    std::unique_ptr<Process> s0, s1, s1b;
    const std::string a0 = Serve(s0, model, "--layers 0-1 -t 1 --token tok", t / (pre + "s0.log"));
    ASSERT_FALSE(a0.empty());
    const std::string a1 =
        Serve(s1, model, "--layers 2-2 -t 1 --token tok --peer " + a0, t / (pre + "s1.log"));
    const std::string a1b =
        Serve(s1b, model, "--layers 2-2 -t 1 --token tok --peer " + a0, t / (pre + "s1b.log"));
    ASSERT_FALSE(a1.empty() || a1b.empty());
    net::ChainOptions co;
    co.address = a0;
    co.token = "tok";
    if (k.deadline_s > 0) co.deadline_s = k.deadline_s;
    if (k.deadline_s == 0)  // the keepalive case: the deadline must not be what ends the wait
      ASSERT_GT(co.deadline_s, k.within_s);
    ASSERT_TRUE(WaitUntil(30, [&] {
      auto l = net::ListStages(a0, "", "tok");
      return l.ok() && l->size() == 3;
    }));
    std::vector<std::string> notes;
    std::mutex notes_mu;
    co.log = [&](const std::string& m) {
      std::lock_guard<std::mutex> l(notes_mu);
      notes.push_back(m);
    };
    auto chain = net::SwarmChain::Connect(co);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    const std::vector<net::SwarmChain::Hop> route = (*chain)->Route();
    ASSERT_EQ(route.size(), 2u);
    Process* used = route[1].address == a1 ? s1.get() : s1b.get();
    std::atomic<bool> done{false};
    Status result;
    std::vector<int32_t> got;
    std::thread gen([&] {
      result = Greedy(**chain, prompt, kTokens, &got, [&](int i) {
        if (i == kTokens / 3) used->Kill(SIGSTOP);  // mid-generation, between two pushes
      });
      done = true;
    });
    // No hang: the generation finishes on the replica.
    const bool finished = WaitUntil(k.within_s, [&] { return done.load(); });
    used->Kill(SIGKILL);
    gen.join();
    ASSERT_TRUE(finished);
    ASSERT_TRUE(result.ok()) << result.ToString();
    EXPECT_EQ(got, want);
    std::lock_guard<std::mutex> l(notes_mu);
    std::string all;
    for (const std::string& n : notes) all += n + "\n";
    EXPECT_NE(all.find("stage 2-2 at " + route[1].address + " failed (" + k.failed),
              std::string::npos)
        << all;
    EXPECT_EQ((*chain)->Route()[1].address, route[1].address == a1 ? a1b : a1);
  }
}

// TLS on every stage call (certificates made here with OpenSSL): stages with a certificate
// from a CA serve, and push to each other, for a client that trusts that CA, with the
// local text; a plain client, a client trusting another CA, and a stage whose certificate
// has expired are refused, each with a message that says so.
TEST_F(Pipeline, TlsStagesServeOnlyClientsThatTrustThem) {
  TempDir t;
  const std::string d = t.path();
  const std::string make =
      "cd " + d +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 "
      "-subj /CN=test-ca"
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 30 "
      "-subj /CN=other-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout stage.key -out stage.csr -subj /CN=127.0.0.1"
      " && printf 'subjectAltName=IP:127.0.0.1\\n' > ext"
      " && openssl x509 -req -in stage.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
      "stage.pem -days 30 -extfile ext"
      " && openssl x509 -req -in stage.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
      "expired.pem -days -1 -extfile ext";
  ASSERT_EQ(std::system((make + " >/dev/null 2>&1").c_str()), 0)
      << "openssl could not make certificates";
  const std::string tls =
      " -t 1 --token tok --tls-key " + t / "stage.key" + " --tls-ca " + t / "ca.pem";
  std::unique_ptr<Process> a, b, old;
  const std::string first =
      Serve(a, Tiny(), "--layers 0-1 --tls-cert " + t / "stage.pem" + tls, t / "a.log");
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(Serve(b, Tiny(),
                     "--layers 2-3 --tls-cert " + t / "stage.pem" + tls + " --peer " + first,
                     t / "b.log")
                   .empty());
  ASSERT_TRUE(WaitUntil(30, [&] {
    auto l = net::ListStages(first, "", "tok", t / "ca.pem");
    return l.ok() && l->size() == 2 && (*l)[0].answers && (*l)[1].answers;
  }));
  const std::string args = " -p 'over TLS' -n 24 --temp 0 --ignore-eos --token tok";
  Result local = Ggswarm("run " + Tiny() + args, t);
  ASSERT_EQ(local.code, 0) << local.err;
  Result good = Ggswarm("run swarm://" + first + "/" + args + " --tls-ca " + t / "ca.pem", t);
  ASSERT_EQ(good.code, 0) << good.err;
  EXPECT_EQ(good.out, local.out);
  Result plain = Ggswarm("run swarm://" + first + "/" + args, t);
  EXPECT_EQ(plain.code, 1);
  EXPECT_NE(plain.err.find("give its CA with --tls-ca"), std::string::npos) << plain.err;
  EXPECT_NE(a->Log().find("closed a connection: TLS:"), std::string::npos) << a->Log();
  Result other = Ggswarm("run swarm://" + first + "/" + args + " --tls-ca " + t / "other.pem", t);
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("certificate verify failed"), std::string::npos) << other.err;
  const std::string expired =
      Serve(old, Tiny(), "--tls-cert " + t / "expired.pem" + tls, t / "old.log");
  ASSERT_FALSE(expired.empty());
  Result late = Ggswarm("run swarm://" + expired + "/" + args + " --tls-ca " + t / "ca.pem", t);
  EXPECT_EQ(late.code, 1);
  EXPECT_NE(late.err.find("certificate verify failed"), std::string::npos) << late.err;
  Result no_key = Ggswarm("serve " + Tiny() + " --tls-cert " + t / "stage.pem", t);
  EXPECT_EQ(no_key.code, 1);
  EXPECT_NE(no_key.err.find("--tls-cert and --tls-key go together"), std::string::npos)
      << no_key.err;
  EXPECT_TRUE(a->running() && b->running());
}

// Stages with the same kernels give a checker the same bits, since it is fed the chain's own
// batches (a prompt's chunks as sent; single steps up to ExactRun at once): a stage that
// perturbs its output by far less than kVerifyTolerance is still caught and banned, and
// honest stages agree bit for bit through a prompt longer than the row dots' group (its
// own kernels) and 40 single steps (replayed 31 at a time). Q8_0 and F16 models (ExactRun
// 31 and 3).
TEST_F(Pipeline, StagesWithTheSameKernelsMustGiveTheSameBits) {
  TempDir t;
  for (const std::string type : {"Q8_0", "F16"}) {
    SCOPED_TRACE(type);
    const std::string model = t / (type + ".gguf");
    Result r = Ggswarm("synth " + model + " --preset tiny --n-layer 3 --type " + type +
                           " --seed 3 --name exact" + type,
                       t);
    ASSERT_EQ(r.code, 0) << r.err;
    auto header = gguf::GgufFile::Open(model);
    ASSERT_TRUE(header.ok());
    EXPECT_EQ(net::ExactRun(*header), type == "Q8_0" ? model::kRowDotMaxTokens : 3);
    std::vector<std::unique_ptr<net::StageServer>> stages;
    auto start = [&](int first, int end, float perturb, const std::string& peer) {
      return StartStage(stages, model, first, end, perturb, peer);
    };
    const std::string a0 = start(0, 1, 0, "");
    ASSERT_FALSE(a0.empty());
    const std::string liar = start(1, 3, 1e-4f, a0);
    ASSERT_FALSE(start(1, 3, 0, a0).empty());
    ASSERT_FALSE(start(1, 3, 0, a0).empty());
    ASSERT_TRUE(WaitForStages(a0, 4));
    runtime::EngineOptions eo;
    eo.threads = 1;
    auto engine = runtime::Engine::Open(model, eo);
    ASSERT_TRUE(engine.ok());
    std::vector<int32_t> prompt = {1};
    for (int i = 0; i < 45; ++i) prompt.push_back(10 + 7 * i);
    std::vector<float> want;
    ASSERT_TRUE((*engine)->Eval(prompt, &want).ok());
    net::ChainOptions co;
    co.address = a0;
    co.prefer = {liar};
    {  // the liar's logits differ from the truth, but by less than the tolerance
      auto chain = net::SwarmChain::Connect(co);
      ASSERT_TRUE(chain.ok()) << chain.status().ToString();
      ASSERT_EQ((*chain)->Route()[1].address, liar);
      EXPECT_FALSE((*chain)->Route()[1].kernels.empty());
      std::vector<float> got;
      ASSERT_TRUE((*chain)->Eval(prompt, &got).ok());
      const double d = net::LogitDifference(got, want);
      EXPECT_GT(d, 0);
      EXPECT_LT(d, net::kVerifyTolerance);
    }
    co.verify_fraction = 1;
    auto chain = net::SwarmChain::Connect(co);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    std::vector<float> got;
    ASSERT_TRUE((*chain)->Eval(prompt, &got).ok());
    EXPECT_EQ((*chain)->banned(), std::vector<std::string>{liar});
    EXPECT_EQ(got, want);
    // Forty single steps, every one checked, against the honest stages only.
    for (int i = 0; i < 40; ++i) {
      const int32_t tok = 20 + 11 * i;
      ASSERT_TRUE((*chain)->Eval({&tok, 1}, &got).ok()) << i;
      ASSERT_TRUE((*engine)->Eval({&tok, 1}, &want).ok());
      ASSERT_EQ(got, want) << i;
    }
    EXPECT_EQ((*chain)->banned(), std::vector<std::string>{liar});
    EXPECT_GE((*chain)->checks(), 20);  // range 0 has no other stage: every other step
  }
}

// In a swarm of mixed instruction sets, checkers run the checked stage's kernels while any
// stage does: a liar perturbing its output far below kVerifyTolerance is caught by a stage
// of its own kernels and banned on the word of a third of them, and the stage of other
// kernels (an AVX2 process), which could only agree within the tolerance with all three
// and leave the disagreement unsettled, is never asked to compute (it holds no session).
// The client's own preference for the local kernels keeps the rebuilt chain's logits a
// local engine's bits.
TEST_F(Pipeline, CheckersRunTheCheckedStagesKernelsWhereAnyStageDoes) {
  if (model::KernelsInUse().rfind("avx512", 0) != 0)
    GTEST_SKIP() << "this CPU has no AVX-512 VNNI: no stage runs other kernels than AVX2";
  TempDir t;
  const std::string model = t / "mixed.gguf";
  Result r = Ggswarm("synth " + model + " --preset tiny --n-layer 3 --type Q8_0 --seed 5", t);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::unique_ptr<net::StageServer>> stages;
  const std::string a0 = StartStage(stages, model, 0, 1, 0, "");
  ASSERT_FALSE(a0.empty());
  const std::string liar = StartStage(stages, model, 1, 3, 1e-4f, a0);
  std::unique_ptr<Process> avx2_process;
  const std::string avx2 =
      StartListening(avx2_process, {"/usr/bin/env", "GGSWARM_ISA=avx2", Cli(), "serve", model},
                     "--layers 1-2 -t 1 --peer " + a0, t / "avx2.log", "serving ",
                     " at (127\\.0\\.0\\.1:[0-9]+) ");
  ASSERT_FALSE(avx2.empty());
  const std::string y = StartStage(stages, model, 1, 3, 0, a0);
  const std::string z = StartStage(stages, model, 1, 3, 0, a0);
  ASSERT_FALSE(y.empty() || z.empty());
  ASSERT_TRUE(WaitForStages(a0, 5));

  net::ChainOptions co;
  co.address = a0;
  {  // the process does report other kernels
    co.prefer = {avx2};
    auto chain = net::SwarmChain::Connect(co);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    ASSERT_EQ((*chain)->Route()[1].address, avx2);
    EXPECT_EQ((*chain)->Route()[1].kernels, "avx2");
  }
  std::string log;
  co.log = [&](const std::string& line) { log += line + "\n"; };
  co.prefer = {liar};
  co.prefer_kernels = model::KernelsInUse();
  co.verify_fraction = 1;
  auto chain = net::SwarmChain::Connect(co);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ((*chain)->Route()[1].address, liar);
  runtime::EngineOptions eo;
  eo.threads = 1;
  auto engine = runtime::Engine::Open(model, eo);
  ASSERT_TRUE(engine.ok());
  std::vector<int32_t> prompt = {1};
  for (int i = 0; i < 20; ++i) prompt.push_back(30 + 13 * i);
  std::vector<float> got, want;
  ASSERT_TRUE((*chain)->Eval(prompt, &got).ok()) << log;
  ASSERT_TRUE((*engine)->Eval(prompt, &want).ok());
  EXPECT_EQ((*chain)->banned(), std::vector<std::string>{liar}) << log;
  EXPECT_EQ(got, want);
  for (int i = 0; i < 16; ++i) {
    const int32_t tok = 40 + 9 * i;
    ASSERT_TRUE((*chain)->Eval({&tok, 1}, &got).ok()) << i << log;
    ASSERT_TRUE((*engine)->Eval({&tok, 1}, &want).ok());
    ASSERT_EQ(got, want) << i;
  }
  EXPECT_EQ((*chain)->banned(), std::vector<std::string>{liar}) << log;
  EXPECT_NE((*chain)->Route()[1].address, avx2);
  EXPECT_GE((*chain)->checks(), 8);
  const bool by_y_then_z = log.find("disagrees with " + y + " and " + z) != std::string::npos;
  const bool by_z_then_y = log.find("disagrees with " + z + " and " + y) != std::string::npos;
  EXPECT_TRUE(by_y_then_z || by_z_then_y) << log;
  EXPECT_EQ(log.find(avx2), std::string::npos) << log;
  // Nothing was computed on the AVX2 stage for this client: it holds no session, while the
  // two honest stages of the local kernels hold the chain's and the checkers'.
  auto listed = net::ListStages(a0, "", "");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  int seen = 0;
  for (const net::StageInfo& st : *listed) {
    if (st.address == avx2) {
      EXPECT_EQ(st.open_sessions, 0);
      ++seen;
    } else if (st.address == y || st.address == z) {
      EXPECT_GE(st.open_sessions, 1) << st.address;
      ++seen;
    }
  }
  EXPECT_EQ(seen, 3);
}

// What lets honest stages on other instruction sets agree: the logits of AVX2 and AVX-512
// kernels, of a prompt in one batch and then of single steps (a checker's batches), stay
// within kVerifyTolerance of each other (LogitDifference) on the shared trained models and on
// random ones of the weight types, each step fed the same tokens. Prints the largest seen.
TEST(HonestComputation, InstructionSetsAgreeWithinTheVerifyTolerance) {
  if (!ScopedIsa(kernels::Isa::kAvx512Vnni).has(kernels::Isa::kAvx512Vnni))
    GTEST_SKIP() << "this CPU has no AVX-512 VNNI: AVX2 is the only instruction set to compare";
  TempDir t;
  std::vector<std::string> models;
  for (const std::string& m : SharedModels())
    if (m.find("-f32") == std::string::npos) models.push_back(m);  // F16 and Q8_0 kernels
  for (const char* type : {"Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "Q5_1", "Q3_K", "F16", "BF16"}) {
    const std::string m = t / (std::string(type) + ".gguf");
    Result r = Ggswarm("synth " + m + " --preset tiny --n-layer 3 --seed 11 --type " + type, t);
    ASSERT_EQ(r.code, 0) << r.err;
    models.push_back(m);
  }
  for (const std::string& m : models) {
    SCOPED_TRACE(m);
    auto logits = [&](kernels::Isa isa) {
      ScopedIsa scoped(isa);
      std::vector<std::vector<float>> steps;
      auto e = runtime::Engine::Open(m, {.threads = 2, .n_ctx = 96});
      EXPECT_TRUE(e.ok()) << e.status().ToString();
      if (!e.ok()) return steps;
      const int n_vocab = (*e)->config().n_vocab;
      std::vector<int32_t> prompt = {1};
      for (int i = 0; i < 40; ++i) prompt.push_back(2 + (i * 37) % (n_vocab - 2));
      std::vector<float> l;
      EXPECT_TRUE((*e)->Eval(prompt, &l).ok());
      steps.push_back(l);
      for (int i = 0; i < 24; ++i) {
        const int32_t tok = 2 + (i * 53 + 7) % (n_vocab - 2);
        EXPECT_TRUE((*e)->Eval({&tok, 1}, &l).ok());
        steps.push_back(l);
      }
      return steps;
    };
    const auto fast = logits(kernels::Isa::kAvx512Vnni), avx2 = logits(kernels::Isa::kAvx2);
    ASSERT_EQ(fast.size(), avx2.size());
    double worst = 0;
    for (size_t i = 0; i < fast.size(); ++i)
      worst = std::max(worst, net::LogitDifference(fast[i], avx2[i]));
    std::printf("%-48s AVX-512 against AVX2: largest difference %.4f of the logits' range\n",
                fs::path(m).filename().c_str(), worst);
    EXPECT_LE(worst, net::kVerifyTolerance);
  }
}

// A last stage whose hidden states come out NaN (fault injection) answers with an error
// naming the non-finite logit rather than sending it, and the client's step fails naming the
// stage, not sampling some token.
TEST_F(Pipeline, ANonFiniteLogitFromAStageIsAnErrorNamingIt) {
  TempDir t;
  const std::string model = TinyModelFile(t, "--n-layer 2 --type Q8_0 --seed 4");
  std::vector<std::unique_ptr<net::StageServer>> stages;
  const std::string a0 = StartStage(stages, model, 0, 1, 0, "");
  ASSERT_FALSE(a0.empty());
  const std::string bad =
      StartStage(stages, model, 1, 2, std::numeric_limits<float>::quiet_NaN(), a0);
  ASSERT_FALSE(bad.empty());
  ASSERT_TRUE(WaitForStages(a0, 2));
  net::ChainOptions co;
  co.address = a0;
  auto chain = net::SwarmChain::Connect(co);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  std::vector<float> logits;
  const std::vector<int32_t> prompt = {1, 7, 11};
  const Status st = (*chain)->Eval(prompt, &logits);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not a finite number"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(bad), std::string::npos) << st.message();
}

// A chain let go right after a pushed step, while the first stage's answer to the push is
// still on its way: the calls' last references must not be dropped in gRPC's callback
// (gRPC 1.51 aborts when a channel's last reference goes there). The window is open only
// while the answer is late, as on a loaded machine: before the fix, three of these tests
// side by side aborted in 2 of 30 runs, and StagesWithTheSameKernelsMustGiveTheSameBits in
// 12 of 180 (0 of 210 after).
TEST_F(Pipeline, AChainLetGoRightAfterAPushedStepLeavesTheProcessStanding) {
  TempDir t;
  const std::string model = TinyModelFile(t, "--n-layer 2 --seed 5");
  std::vector<std::unique_ptr<net::StageServer>> stages;
  const std::string a0 = StartStage(stages, model, 0, 1, 0, "");
  ASSERT_FALSE(a0.empty());
  ASSERT_FALSE(StartStage(stages, model, 1, 2, 0, a0).empty());
  ASSERT_TRUE(WaitForStages(a0, 2));
  auto engine = runtime::Engine::Open(model, {.threads = 1});
  ASSERT_TRUE(engine.ok());
  const std::vector<int32_t> prompt = {1, 17, 29};
  std::vector<float> want;
  ASSERT_TRUE((*engine)->Eval(prompt, &want).ok());
  net::ChainOptions co;
  co.address = a0;
  for (int i = 0; i < 60; ++i) {
    auto chain = net::SwarmChain::Connect(co);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    std::vector<float> got;
    ASSERT_TRUE((*chain)->Eval(prompt, &got).ok()) << i;
    ASSERT_EQ(got, want) << i;
  }
}

// A replica that takes fewer positions per call than the batches were sent in: the replay
// cuts them (net::ReplayCalls), and the chain goes on, the logits within the tolerance of
// batches computed in other shapes.
TEST_F(Pipeline, AReplayCutsTheBatchesForAReplicaThatTakesFewer) {
  TempDir t;
  const std::string model = TinyModelFile(t, "--n-layer 3 --type Q8_0 --seed 9");
  std::vector<std::unique_ptr<net::StageServer>> stages;
  const std::string a0 = StartStage(stages, model, 0, 1, 0, "");
  ASSERT_FALSE(a0.empty());
  const std::string wide = StartStage(stages, model, 1, 3, 0, a0);
  ASSERT_FALSE(wide.empty());
  ASSERT_FALSE(StartStage(stages, model, 1, 3, 0, a0, 8).empty());
  ASSERT_TRUE(WaitForStages(a0, 3));
  auto engine = runtime::Engine::Open(model, {.threads = 1});
  ASSERT_TRUE(engine.ok());
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back(5 + (13 * i) % 250);
  std::vector<float> want, got;
  ASSERT_TRUE((*engine)->Eval(prompt, &want).ok());
  net::ChainOptions co;
  co.address = a0;
  co.prefer = {wide};
  std::vector<std::string> log;
  co.log = [&](const std::string& s) { log.push_back(s); };
  auto chain = net::SwarmChain::Connect(co);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ((*chain)->Route()[1].address, wide);
  ASSERT_TRUE((*chain)->Eval(prompt, &got).ok());
  EXPECT_EQ(got, want);
  stages[1]->Shutdown();
  const int32_t next = 77;
  ASSERT_TRUE((*engine)->Eval({&next, 1}, &want).ok());
  auto st = (*chain)->Eval({&next, 1}, &got);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ((*chain)->max_batch(), 8);
  EXPECT_LT(net::LogitDifference(got, want), net::kVerifyTolerance);
  bool replayed = false;
  for (const std::string& s : log)
    replayed |= s.find("40 tokens of 1 sequences replayed in 5 steps") != std::string::npos;
  EXPECT_TRUE(replayed) << ::testing::PrintToString(log);
}

TEST_F(Pipeline, AKilledStageWithoutAReplicaNamesTheMissingLayers) {
  TempDir t;
  const std::string model = SlowModel(t);
  std::unique_ptr<Process> s0, s1;
  const std::string a0 = Serve(s0, model, "--layers 0-1 -t 1", t / "s0.log");
  const std::string a1 = Serve(s1, model, "--layers 2-2 -t 1 --peer " + a0, t / "s1.log");
  ASSERT_FALSE(a0.empty() || a1.empty());
  ASSERT_TRUE(WaitForStages(a0, 2));
  Process run(
      {Cli(), "run", "swarm://" + a0 + "/", "-p", "x", "-n", "400", "--temp", "0", "--ignore-eos"},
      t / "run.out", t / "run.err");
  WaitUntil(60, [&] { return run.Log().size() >= 20 || !run.running(); });
  ASSERT_TRUE(run.running());
  s1->Kill(SIGKILL);
  EXPECT_EQ(run.Wait(60), 1);
  std::stringstream err;
  err << std::ifstream(t / "run.err").rdbuf();
  EXPECT_NE(err.str().find("no live peer serves layers 2-2 of slowpipe"), std::string::npos)
      << err.str();
}

// The protocol's checks, from a raw client.
class StageProtocol : public Pipeline {
 protected:
  void SetUp() override {
    addr_ =
        Serve(stage_, Tiny(), "--layers 1-3 --max-sessions 2 --ctx 16 --idle-timeout 1 --token tok",
              t_ / "stage.log");
    ASSERT_FALSE(addr_.empty());
    stub_ = pb::Stage::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  }
  std::unique_ptr<grpc::ClientContext> Ctx(bool token = true) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (token) c->AddMetadata(net::kTokenHeader, "tok");
    return c;
  }
  std::string Open(uint32_t n_ctx = 0) {
    pb::OpenSessionRequest req;
    req.set_n_ctx(n_ctx);
    pb::OpenSessionReply rep;
    EXPECT_TRUE(stub_->OpenSession(Ctx().get(), req, &rep).ok());
    return rep.session_id();
  }
  grpc::Status Forward(const std::string& session, uint32_t position, uint32_t n, size_t bytes) {
    pb::ForwardRequest req;
    req.set_session_id(session);
    req.set_position(position);
    req.set_n(n);
    req.set_hidden(std::string(bytes, '\0'));
    pb::ForwardReply rep;
    return stub_->Forward(Ctx().get(), req, &rep);
  }
  TempDir t_;
  std::unique_ptr<Process> stage_;
  std::string addr_;
  std::unique_ptr<pb::Stage::Stub> stub_;
};

TEST_F(StageProtocol, RefusesWhatDoesNotFitTheModelOrTheLimits) {
  const size_t d = 256;  // the tiny preset's hidden size
  pb::HelloRequest hello;
  hello.set_version(1);
  pb::HelloReply hr;
  EXPECT_EQ(stub_->Hello(Ctx(false).get(), hello, &hr).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(stub_->Hello(Ctx().get(), hello, &hr).ok());
  EXPECT_EQ(hr.served().n_embd(), d);
  EXPECT_EQ(hr.served().first_layer(), 1u);
  EXPECT_FALSE(hr.served().has_embedding());
  EXPECT_TRUE(hr.served().has_head());
  hello.set_version(2);
  EXPECT_EQ(stub_->Hello(Ctx().get(), hello, &hr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const std::string s = Open();
  ASSERT_FALSE(s.empty());
  EXPECT_TRUE(Forward(s, 0, 2, 2 * d * 4).ok());
  auto bad = Forward(s, 2, 2, 2 * d * 4 - 4);  // a lying length
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("hidden states of"), std::string::npos);
  EXPECT_EQ(Forward(s, 2, 0, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Forward(s, 2, 100000, 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Forward(s, 9, 1, d * 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // gap
  auto full = Forward(s, 2, 15, 15 * d * 4);  // past --ctx 16
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(full.error_message().find("context is full"), std::string::npos);
  {  // tokens sent to a stage that takes hidden states
    pb::ForwardRequest req;
    req.set_session_id(s);
    req.set_n(1);
    req.add_tokens(1);
    pb::ForwardReply rep;
    EXPECT_EQ(stub_->Forward(Ctx().get(), req, &rep).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(Forward("nonsense", 0, 1, d * 4).error_code(), grpc::StatusCode::NOT_FOUND);
  {  // a ForwardMany is refused whole when one item is bad, and changes no session
    const std::string s2 = Open();
    pb::ForwardManyRequest many;
    for (const std::string& id : {s, s2}) {
      pb::ForwardRequest* f = many.add_items();
      f->set_session_id(id);
      f->set_position(id == s ? 2 : 0);
      f->set_n(1);
      f->set_hidden(std::string(d * 4, '\0'));
    }
    many.mutable_items(1)->set_position(3);  // a gap in the second session
    pb::ForwardManyReply mr;
    auto gap = stub_->ForwardMany(Ctx().get(), many, &mr);
    EXPECT_EQ(gap.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(gap.error_message().find("item 1:"), std::string::npos) << gap.error_message();
    many.mutable_items(1)->set_session_id("nonsense");
    EXPECT_EQ(stub_->ForwardMany(Ctx().get(), many, &mr).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(stub_->ForwardMany(Ctx(false).get(), many, &mr).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    // s is still at position 2: 3 would be a gap.
    EXPECT_EQ(Forward(s, 3, 1, d * 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    pb::CloseSessionRequest close;
    close.set_session_id(s2);
    pb::CloseSessionReply cr;
    ASSERT_TRUE(stub_->CloseSession(Ctx().get(), close, &cr).ok());
  }
  pb::OpenSessionRequest big;
  big.set_n_ctx(1 << 30);
  pb::OpenSessionReply rep;
  EXPECT_EQ(stub_->OpenSession(Ctx().get(), big, &rep).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Two sessions at most; the third is refused and says why.
  ASSERT_FALSE(Open().empty());
  pb::OpenSessionRequest req;
  auto third = stub_->OpenSession(Ctx().get(), req, &rep);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.error_message().find("this stage is full"), std::string::npos);
  // An oversized message is refused by the transport before it is read.
  EXPECT_NE(Forward(s, 2, 1, 600u << 20).error_code(), grpc::StatusCode::OK);
  // Idle sessions expire (--idle-timeout 1): there is room again, and s is gone. (Asked by
  // opening sessions: a call naming s would keep it in use.)
  EXPECT_TRUE(WaitUntil(10, [&] { return stub_->OpenSession(Ctx().get(), req, &rep).ok(); }));
  EXPECT_EQ(Forward(s, 2, 1, d * 4).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(stage_->running());
}

// Sessions that a stage runs together (one ForwardMany, or Forwards of several clients at
// once) get, bit for bit, the hidden states and logits each gets alone: a first stage (tokens
// in, hidden states out) and a whole-model stage (tokens in, logits out), each with 6
// sessions at different lengths, prompts in chunks of different sizes beside single tokens.
TEST_F(Pipeline, SessionsRunTogetherGetWhatEachGetsAlone) {
  TempDir t;
  std::unique_ptr<Process> head_stage, first_stage;
  const std::string whole = Serve(head_stage, Tiny(), "--max-sessions 8", t / "whole.log");
  const std::string first =
      Serve(first_stage, Tiny(), "--layers 0-1 --max-sessions 8", t / "first.log");
  ASSERT_FALSE(whole.empty());
  ASSERT_FALSE(first.empty());
  constexpr int kSeqs = 6;
  // Step k of sequence s: how many tokens it sends (prompts of different lengths in chunks,
  // then one at a time), and which.
  auto step_len = [](int s, int k) { return k == 0 ? 1 + 3 * s : (k == 1 && s % 2 ? 5 : 1); };
  auto token = [](int s, int pos) { return (37 * s + 11 * pos + 5) % 300 + 3; };
  for (const std::string& addr : {whole, first}) {
    auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    auto ctx = [] {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      return c;
    };
    auto open = [&] {
      pb::OpenSessionRequest req;
      req.set_n_ctx(64);
      pb::OpenSessionReply rep;
      EXPECT_TRUE(stub->OpenSession(ctx().get(), req, &rep).ok());
      return rep.session_id();
    };
    auto request = [&](const std::string& id, int s, int k, int* pos) {
      pb::ForwardRequest f;
      f.set_session_id(id);
      f.set_position(static_cast<uint32_t>(*pos));
      f.set_n(static_cast<uint32_t>(step_len(s, k)));
      for (int i = 0; i < step_len(s, k); ++i) f.add_tokens(token(s, *pos + i));
      *pos += step_len(s, k);
      return f;
    };
    auto output = [](const pb::ForwardReply& r) { return r.logits() + r.hidden(); };
    constexpr int kSteps = 5;
    // Alone: one session after another, each step its own call.
    std::vector<std::vector<std::string>> alone(kSeqs);
    for (int s = 0; s < kSeqs; ++s) {
      const std::string id = open();
      int pos = 0;
      for (int k = 0; k < kSteps; ++k) {
        pb::ForwardReply rep;
        ASSERT_TRUE(stub->Forward(ctx().get(), request(id, s, k, &pos), &rep).ok());
        alone[s].push_back(output(rep));
      }
      pb::CloseSessionRequest close;
      close.set_session_id(id);
      pb::CloseSessionReply cr;
      ASSERT_TRUE(stub->CloseSession(ctx().get(), close, &cr).ok());
    }
    // Together, in one ForwardMany per step.
    std::vector<std::string> ids;
    std::vector<int> pos(kSeqs, 0);
    for (int s = 0; s < kSeqs; ++s) ids.push_back(open());
    for (int k = 0; k < kSteps; ++k) {
      pb::ForwardManyRequest many;
      for (int s = 0; s < kSeqs; ++s) *many.add_items() = request(ids[s], s, k, &pos[s]);
      pb::ForwardManyReply rep;
      const grpc::Status st = stub->ForwardMany(ctx().get(), many, &rep);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(rep.items_size(), kSeqs);
      for (int s = 0; s < kSeqs; ++s)
        EXPECT_TRUE(output(rep.items(s)) == alone[s][k]) << addr << " step " << k << " seq " << s;
    }
    // Together as concurrent Forwards, a thread per session (the stage batches whatever
    // waits at once; which calls meet is up to the scheduler, and must not matter).
    std::vector<std::string> ids2;
    for (int s = 0; s < kSeqs; ++s) {
      pb::CloseSessionRequest close;
      close.set_session_id(ids[s]);
      pb::CloseSessionReply cr;
      ASSERT_TRUE(stub->CloseSession(ctx().get(), close, &cr).ok());
      ids2.push_back(open());
    }
    std::vector<std::vector<std::string>> together(kSeqs);
    std::vector<std::thread> threads;
    for (int s = 0; s < kSeqs; ++s)
      threads.emplace_back([&, s] {
        int p = 0;
        for (int k = 0; k < kSteps; ++k) {
          pb::ForwardReply rep;
          if (!stub->Forward(ctx().get(), request(ids2[s], s, k, &p), &rep).ok()) return;
          together[s].push_back(output(rep));
        }
      });
    for (auto& th : threads) th.join();
    for (int s = 0; s < kSeqs; ++s) EXPECT_TRUE(together[s] == alone[s]) << addr << " seq " << s;
    // A push goes only to a stage that serves the next layers of the same model.
    if (addr != first) continue;
    for (const std::string& id : ids2) {  // room for one more session
      pb::CloseSessionRequest close;
      close.set_session_id(id);
      pb::CloseSessionReply cr;
      ASSERT_TRUE(stub->CloseSession(ctx().get(), close, &cr).ok());
    }
    pb::OpenSessionRequest oreq;
    pb::OpenSessionReply orep;
    grpc::ClientContext oc;
    ASSERT_TRUE(stub->OpenSession(&oc, oreq, &orep).ok());
    auto push = [&](const std::string& to, int sessions, bool to_await) {
      pb::ForwardRequest f;
      f.set_session_id(orep.session_id());
      f.set_n(1);
      f.add_tokens(5);
      f.set_to_await(to_await);
      pb::Hop* h = f.add_route();
      h->set_address(to);
      for (int i = 0; i < sessions; ++i) h->add_session_ids("x");
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      pb::ForwardReply rep;
      return stub->Forward(&c, f, &rep);
    };
    EXPECT_EQ(push("127.0.0.1:1", 1, false).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    const grpc::Status not_next = push(whole, 1, false);  // a stage, but of layers 0-3
    EXPECT_EQ(not_next.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(not_next.error_message().find("to serve layers from 2"), std::string::npos)
        << not_next.error_message();
    EXPECT_EQ(push(whole, 2, false).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(push(whole, 1, true).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

// Mutated messages (flipped bits, truncations, random bytes) of every kind, parsed as the
// stage would parse them and sent: each gets an answer, and the stage keeps working.
TEST_F(StageProtocol, SurvivesMutatedMessages) {
  const std::string s = Open();
  pb::ForwardRequest fwd;
  fwd.set_session_id(s);
  fwd.set_position(0);
  fwd.set_n(2);
  fwd.set_hidden(std::string(2 * 256 * 4, '\x01'));
  pb::OpenSessionRequest open;
  open.set_n_ctx(8);
  pb::AnnounceRequest ann;
  auto* r = ann.add_ranges();
  r->set_address("127.0.0.1:1");
  r->set_first_layer(0);
  r->set_end_layer(2);
  r->set_n_layer(4);
  std::mt19937 rng(3);
  int answered = 0;
  for (int it = 0; it < 600; ++it) {
    const int kind = it % 3;
    std::string bytes = kind == 0   ? fwd.SerializeAsString()
                        : kind == 1 ? open.SerializeAsString()
                                    : ann.SerializeAsString();
    for (int e = 0; e < 1 + static_cast<int>(rng() % 4) && !bytes.empty(); ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
          break;
        case 1:
          bytes.resize(at);
          break;
        default:
          bytes[at] = static_cast<char>(rng());
          break;
      }
    }
    grpc::Status st;
    if (kind == 0) {
      pb::ForwardRequest m;
      if (!m.ParseFromString(bytes)) continue;
      pb::ForwardReply rep;
      st = stub_->Forward(Ctx().get(), m, &rep);
    } else if (kind == 1) {
      pb::OpenSessionRequest m;
      if (!m.ParseFromString(bytes)) continue;
      pb::OpenSessionReply rep;
      st = stub_->OpenSession(Ctx().get(), m, &rep);
      if (st.ok()) {
        pb::CloseSessionRequest c;
        c.set_session_id(rep.session_id());
        pb::CloseSessionReply cr;
        (void)stub_->CloseSession(Ctx().get(), c, &cr);
      }
    } else {
      pb::AnnounceRequest m;
      if (!m.ParseFromString(bytes)) continue;
      pb::AnnounceReply rep;
      st = stub_->Announce(Ctx().get(), m, &rep);
    }
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNAVAILABLE) << "the stage went away";
    answered++;
  }
  EXPECT_GT(answered, 100);
  EXPECT_TRUE(stage_->running());
  EXPECT_TRUE(Forward(s, 0, 1, 256 * 4).ok());
}

// With --token, a call without it is refused before it can take a session: eight of them
// leave every slot free.
TEST_F(StageProtocol, UnauthenticatedCallsHoldNoSession) {
  for (int i = 0; i < 8; ++i) {
    pb::OpenSessionRequest req;
    pb::OpenSessionReply rep;
    EXPECT_EQ(stub_->OpenSession(Ctx(false).get(), req, &rep).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  pb::HelloRequest hello;
  hello.set_version(1);
  pb::HelloReply hr;
  ASSERT_TRUE(stub_->Hello(Ctx().get(), hello, &hr).ok());
  EXPECT_EQ(hr.served().sessions_free(), 2u);  // --max-sessions 2
  EXPECT_FALSE(Open().empty());
  EXPECT_FALSE(Open().empty());
}

// Sessions opened and never used are closed after --unused-timeout, long before the idle
// timeout that a session in use keeps.
TEST_F(Pipeline, UnusedSessionsExpireBeforeUsedOnes) {
  TempDir t;
  std::unique_ptr<Process> stage;
  const std::string addr =
      Serve(stage, Tiny(), "--layers 1-3 --max-sessions 3 --idle-timeout 300 --unused-timeout 1",
            t / "stage.log");
  ASSERT_FALSE(addr.empty());
  auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return c;
  };
  auto open = [&] {
    pb::OpenSessionRequest req;
    pb::OpenSessionReply rep;
    return stub->OpenSession(ctx().get(), req, &rep).ok() ? rep.session_id() : std::string();
  };
  auto forward = [&](const std::string& s, uint32_t position) {
    pb::ForwardRequest req;
    req.set_session_id(s);
    req.set_position(position);
    req.set_n(1);
    req.set_hidden(std::string(256 * 4, '\0'));
    pb::ForwardReply rep;
    return stub->Forward(ctx().get(), req, &rep);
  };
  const std::string used = open();
  ASSERT_FALSE(used.empty());
  ASSERT_TRUE(forward(used, 0).ok());
  ASSERT_FALSE(open().empty());
  ASSERT_FALSE(open().empty());
  EXPECT_TRUE(open().empty());  // full
  // The two unused ones go; room for two again.
  EXPECT_TRUE(stage->WaitFor("unused for 1 s: closed", 20, 2)) << stage->Log();
  EXPECT_FALSE(open().empty());
  EXPECT_FALSE(open().empty());
  EXPECT_TRUE(forward(used, 1).ok());  // the session in use is still there
}

// The two HTTP/2 attacks that run Debian's gRPC 1.51 out of memory, bounded in count and
// time, against a stage on 127.0.0.1: a header block that never ends (HEADERS, then
// CONTINUATION frames of 16 KB, 100,000 in all) and 20,000 streams opened and reset at once.
// The stage's resident memory grows by less than 200 MB and comes back, and a normal client
// is served throughout. Without the guard (h2_guard.h) the first took a stage to 1.7 GB.
TEST_F(Pipeline, HttpTwoFloodsStayBoundedAndOthersAreServed) {
  TempDir t;
  std::unique_ptr<Process> stage;
  const std::string addr = Serve(stage, Tiny(), "--layers 0-3", t / "stage.log");
  ASSERT_FALSE(addr.empty());
  const int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  const long base = RssMiB(stage->pid());
  long peak = base;

  std::atomic<bool> attacking{true};
  std::atomic<int> served{0}, failed{0};
  std::string first_failure;
  std::thread client([&] {
    auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    while (attacking) {
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      pb::HelloRequest hello;
      hello.set_version(1);
      pb::HelloReply hr;
      const grpc::Status st = stub->Hello(&c, hello, &hr);
      if (!st.ok() && failed++ == 0)
        first_failure = std::to_string(st.error_code()) + " " + st.error_message();
      if (st.ok()) served++;
    }
  });

  using testing::H2Attacker;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const std::string frame16k(16384, 'a');
  int frames = 0, connections = 0;
  while (frames < 100000 && std::chrono::steady_clock::now() < deadline) {
    H2Attacker a(port);
    ASSERT_TRUE(a.open());
    connections++;
    std::string block = H2Attacker::RequestHeaders("/ggswarm.stage.v1.Stage/Hello");
    while (block.size() < 16000) block += H2Attacker::HugeHeaderStart(100) + std::string(100, 'b');
    if (!a.Frame(H2Attacker::kHeaders, 0, 1, block, 2)) continue;
    // Each frame one more small header, the way that makes 1.51 keep them all.
    std::string more;
    while (more.size() < 16000) more += H2Attacker::HugeHeaderStart(100) + std::string(100, 'b');
    while (frames < 100000 && a.Frame(H2Attacker::kContinuation, 0, 1, more, 2)) {
      if (++frames % 2000 == 0) peak = std::max(peak, RssMiB(stage->pid()));
    }
    peak = std::max(peak, RssMiB(stage->pid()));
  }
  int resets = 0;
  while (resets < 20000 && std::chrono::steady_clock::now() < deadline) {
    H2Attacker a(port);
    ASSERT_TRUE(a.open());
    const std::string block = H2Attacker::RequestHeaders("/ggswarm.stage.v1.Stage/Lookup");
    for (uint32_t id = 1; resets < 20000; id += 2) {
      if (!a.Frame(H2Attacker::kHeaders, H2Attacker::kEndHeaders, id, block, 2) ||
          !a.Frame(H2Attacker::kRstStream, 0, id, std::string("\0\0\0\x08", 4), 2))  // CANCEL
        break;
      if (++resets % 1000 == 0) peak = std::max(peak, RssMiB(stage->pid()));
    }
  }
  attacking = false;
  client.join();
  std::printf(
      "stage RSS: %ld MiB before, %ld MiB at most during %d CONTINUATION frames "
      "(%d connections) and %d resets\n",
      base, peak, frames, connections, resets);
  EXPECT_EQ(frames, 100000) << "the attack ran out of time";
  EXPECT_EQ(resets, 20000) << "the attack ran out of time";
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in quarantine and does not hand it back to the
  // system (a stage grew 74 → 148 MiB and stayed there with the quarantine off): resident
  // memory says nothing here, so the bound is checked by the ordinary build.
  std::printf("memory bound not checked under AddressSanitizer\n");
#else
  EXPECT_LT(peak - base, 200);
  EXPECT_TRUE(WaitUntil(20, [&] { return RssMiB(stage->pid()) < base + 50; }))
      << RssMiB(stage->pid()) << " MiB, " << base << " MiB before";
#endif
  EXPECT_GT(served.load(), 0);
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  EXPECT_TRUE(stage->running());
  EXPECT_NE(stage->Log().find("closed a connection: a header block of more than"),
            std::string::npos);
  EXPECT_NE(stage->Log().find("closed a connection: streams reset faster than"), std::string::npos);
}

// Keepalive pings and a PING flood (CVE-2019-9512). A stage takes a real caller's pings
// (SetKeepalive: every kKeepaliveMs while a call is open) through a call that lasts until its
// deadline; a connection that pings fast with nothing else is sent away by gRPC's ping
// strikes, and other clients are served.
TEST_F(Pipeline, KeepalivePingsAreWelcomeAndAPingFloodIsSentAway) {
  TempDir t;
  std::unique_ptr<Process> stage;
  const std::string addr = Serve(stage, Tiny(), "--layers 0-3", t / "stage.log");
  ASSERT_FALSE(addr.empty());
  const int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  using testing::H2Attacker;
  const std::string ping(8, 'p');
  {  // A real caller's keepalive through a call that lasts: an Await for a reply that never
     // comes ends at its deadline, not sent away.
    grpc::ChannelArguments args;
    net::SetKeepalive(&args);
    auto stub = pb::Stage::NewStub(
        grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args));
    auto ctx = [](int seconds) {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
      return c;
    };
    pb::OpenSessionRequest open;
    pb::OpenSessionReply opened;
    ASSERT_TRUE(stub->OpenSession(ctx(10).get(), open, &opened).ok());
    pb::AwaitRequest await;
    await.add_session_ids(opened.session_id());
    await.add_positions(0);
    pb::ForwardManyReply rep;
    const grpc::Status st = stub->Await(ctx(5 * net::kKeepaliveMs / 1000).get(), await, &rep);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  }
  H2Attacker a(port);
  ASSERT_TRUE(a.open());
  int sent = 0;
  while (sent < 100000 && a.Frame(H2Attacker::kPing, 0, 0, ping, 2)) {
    if (++sent % 100 == 0 && !a.Drain()) break;
  }
  EXPECT_TRUE(WaitUntil(10, [&] { return !a.Drain(); }))
      << "the connection stayed open after " << sent << " pings";
  auto stub = pb::Stage::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::HelloRequest hello;
  hello.set_version(net::kStageProtocolVersion);
  pb::HelloReply hr;
  EXPECT_TRUE(stub->Hello(&c, hello, &hr).ok());
  EXPECT_TRUE(stage->running());
}

}  // namespace
}  // namespace ggswarm
