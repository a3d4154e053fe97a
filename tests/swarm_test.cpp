// The fragment swarm as users run it: `ggswarm peer` and `ggswarm fetch` processes talking
// BitTorrent v2 over 127.0.0.1, checked against the original bytes and `ggswarm verify`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "process.h"
#include "test_util.h"

namespace ggswarm {
namespace {

namespace fs = std::filesystem;
using testing::Process;
using testing::ReadBytes;
using testing::TempDir;
using testing::WaitUntil;

std::string Cli() { return GGSWARM_CLI; }

struct Result {
  int code;
  std::string out;  // stdout and stderr
};

Result Ggswarm(const std::string& args) {
  FILE* p = ::popen((Cli() + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// A model of 4 layers, about 17 MB in F32, cut into 256 KiB fragments: big enough that a
// transfer takes several round trips, small enough for a quick test.
class Swarm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    Result r =
        Ggswarm("synth " + Model() +
                " --preset tiny --n-layer 4 --n-vocab 4096 --type F32 --seed 7 --name swarmy");
    ASSERT_EQ(r.code, 0) << r.out;
    r = Ggswarm("fragment " + Model() + " " + Frag() + " --chunk-size 256K");
    ASSERT_EQ(r.code, 0) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("info-hash ([0-9a-f]{64})"))) << r.out;
    *info_hash_ = m[1];
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Model() { return *dir_ / "model.gguf"; }
  static std::string Frag() { return *dir_ / "frag"; }
  static std::string InfoHash() { return *info_hash_; }

  static nlohmann::json Manifest() {
    std::ifstream in(Frag() + "/manifest.json");
    return nlohmann::json::parse(in);
  }

  // Starts `ggswarm peer ARGS` and waits until it seeds `models` models; returns its port.
  static int StartPeer(std::unique_ptr<Process>& p, const std::string& args, const std::string& log,
                       int models = 1) {
    std::vector<std::string> argv = {Cli(), "peer"};
    std::istringstream in(args);
    for (std::string a; in >> a;) argv.push_back(a);
    p = std::make_unique<Process>(argv, log);
    if (!p->WaitFor("seeding ", 30, models)) {
      ADD_FAILURE() << "the peer did not start seeding:\n" << p->Log();
      return 0;
    }
    std::smatch m;
    const std::string l = p->Log();
    if (!std::regex_search(l, m, std::regex("listening on 127\\.0\\.0\\.[12]:([0-9]+)"))) return 0;
    return std::stoi(m[1]);
  }

  // A copy of the fragment directory.
  static std::string CopyOfFrag(const TempDir& t, const std::string& name) {
    const std::string d = t / name;
    fs::copy(Frag(), d);
    return d;
  }

  static std::set<std::string> FragmentFiles(const std::string& dir) {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (n.size() > 4 && n.substr(n.size() - 4) == ".dat" && n != "gguf_header.dat") s.insert(n);
    }
    return s;
  }

  static TempDir* dir_;
  static std::string* info_hash_;
};
TempDir* Swarm::dir_ = nullptr;
std::string* Swarm::info_hash_ = new std::string();

std::string Peer(int port) { return " --peer 127.0.0.1:" + std::to_string(port); }

// A fetch whose log traces libtorrent's events (GGSWARM_TRACE=1): each completed file shows
// as "finished downloading", so a test can wait for progress instead of sleeping.
std::unique_ptr<Process> TracedFetch(const std::vector<std::string>& argv, const std::string& log) {
  ::setenv("GGSWARM_TRACE", "1", 1);
  auto p = std::make_unique<Process>(argv, log);
  ::unsetenv("GGSWARM_TRACE");
  return p;
}

uint64_t Field(const std::string& out, const std::string& re) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(re))) return UINT64_MAX;
  return std::stoull(m[1]);
}

TEST_F(Swarm, OneSeedTwoFetchersGetExactlyTheirLayers) {
  TempDir t;
  std::unique_ptr<Process> seed;
  const int port = StartPeer(seed, "--seed " + Frag(), t / "seed.log");
  ASSERT_GT(port, 0);
  // Both at once, with different selections.
  Process a({Cli(), "fetch", InfoHash(), t / "a", "--peer", "127.0.0.1:" + std::to_string(port),
             "--layers", "0-1", "--with-embedding", "--timeout", "20"},
            t / "a.log");
  Process b(
      {Cli(), "fetch", Frag() + "/model.torrent", t / "b", "--peer",
       "127.0.0.1:" + std::to_string(port), "--layers", "2-3", "--with-head", "--timeout", "20"},
      t / "b.log");
  ASSERT_EQ(a.Wait(60), 0) << a.Log();
  ASSERT_EQ(b.Wait(60), 0) << b.Log();
  // With one peer, every byte came from it: its count is the whole download.
  for (Process* f : {&a, &b}) {
    const uint64_t total = Field(f->Log(), "downloaded ([0-9]+) bytes");
    EXPECT_GT(total, 0u) << f->Log();
    EXPECT_EQ(Field(f->Log(), "from 127.0.0.1:" + std::to_string(port) + ": ([0-9]+) bytes"), total)
        << f->Log();
  }

  // What each should hold, from the manifest's own fields.
  std::set<std::string> want_a, want_b;
  const nlohmann::json manifest = Manifest();
  for (const auto& f : manifest["fragments"]) {
    const std::string file = f["file"], kind = f["kind"];
    const int layer = f["layer"].is_null() ? -1 : f["layer"].get<int>();
    if ((layer >= 0 && layer <= 1) || kind == "embedding") want_a.insert(file);
    if ((layer >= 2 && layer <= 3) || kind == "output" || (layer < 0 && kind == "norm"))
      want_b.insert(file);
  }
  ASSERT_FALSE(want_a.empty());
  EXPECT_EQ(FragmentFiles(t / "a"), want_a);
  EXPECT_EQ(FragmentFiles(t / "b"), want_b);
  for (const std::string& f : want_a)
    EXPECT_EQ(ReadBytes(t / "a/" + f), ReadBytes(Frag() + "/" + f));
  for (const std::string& f : want_b)
    EXPECT_EQ(ReadBytes(t / "b/" + f), ReadBytes(Frag() + "/" + f));

  for (const char* d : {"a", "b"}) {
    Result v = Ggswarm("verify " + t / d);
    EXPECT_EQ(v.code, 0) << v.out;
    EXPECT_NE(v.out.find("are absent, as selected"), std::string::npos) << v.out;
  }
  // A partial copy cannot be reassembled, and says why.
  Result r = Ggswarm("reassemble " + t / "a" + " " + t / "a.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is a partial copy (layers 0-1 + embedding)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t / "a.gguf"));
}

// Seeds found through the DHT only: two seeds with --dht (the second joining through the
// first), and a fetch by info-hash that names no peer, only a DHT node to join through.
TEST_F(Swarm, AFetchFindsItsSeedsThroughAPrivateDht) {
  TempDir t;
  std::unique_ptr<Process> a, b;
  const int pa = StartPeer(a, "--seed " + Frag() + " --dht", t / "a.log");
  ASSERT_GT(pa, 0);
  EXPECT_NE(a->Log().find("DHT node on 127.0.0.1:" + std::to_string(pa)), std::string::npos)
      << a->Log();
  const std::string node_a = "127.0.0.1:" + std::to_string(pa);
  ASSERT_GT(StartPeer(b, "--seed " + Frag() + " --dht --dht-bootstrap " + node_a, t / "b.log"), 0);
  Process f({Cli(), "fetch", InfoHash(), t / "got", "--dht", "--dht-bootstrap", node_a, "--timeout",
             "60"},
            t / "f.log");
  ASSERT_EQ(f.Wait(120), 0) << f.Log();
  Result v = Ggswarm("verify " + t / "got");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find("rebuild the original's SHA-256"), std::string::npos) << v.out;
  // Asked for --dht-bootstrap without --dht: said so.
  Result bad = Ggswarm("fetch " + InfoHash() + " " + t / "x --dht-bootstrap " + node_a);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--dht-bootstrap needs --dht"), std::string::npos) << bad.out;
}

TEST_F(Swarm, ByInfoHashFromTwoSeedsEachWithHalfReassemblesTheOriginal) {
  TempDir t;
  const std::string s1 = CopyOfFrag(t, "s1"), s2 = CopyOfFrag(t, "s2");
  int i = 0;
  const nlohmann::json manifest = Manifest();
  for (const auto& f : manifest["fragments"]) {
    fs::remove((i++ % 2 ? s1 : s2) + "/" + f["file"].get<std::string>());
  }
  std::unique_ptr<Process> p1, p2;
  const int port1 = StartPeer(p1, "--seed " + s1, t / "p1.log");
  const int port2 = StartPeer(p2, "--seed " + s2, t / "p2.log");
  ASSERT_GT(port1, 0);
  ASSERT_GT(port2, 0);
  Result r = Ggswarm("fetch " + InfoHash() + " " + t / "out" + Peer(port1) + Peer(port2) +
                     " --timeout 20");
  ASSERT_EQ(r.code, 0) << r.out;
  // Both seeds sent fragments.
  EXPECT_GT(Field(r.out, "from 127.0.0.1:" + std::to_string(port1) + ": ([0-9]+) bytes"), 100000u)
      << r.out;
  EXPECT_GT(Field(r.out, "from 127.0.0.1:" + std::to_string(port2) + ": ([0-9]+) bytes"), 100000u)
      << r.out;
  Result re = Ggswarm("reassemble " + t / "out" + " " + t / "copy.gguf");
  ASSERT_EQ(re.code, 0) << re.out;
  EXPECT_EQ(ReadBytes(t / "copy.gguf"), ReadBytes(Model()));
  // A full fetch leaves a torrent of the same model, so the copy can be seeded on.
  Result tor = Ggswarm("fetch " + t / "out/model.torrent" + " " + t / "out2" + Peer(port1) +
                       Peer(port2) + " --timeout 20");
  ASSERT_EQ(tor.code, 0) << tor.out;
  EXPECT_NE(tor.out.find(InfoHash()), std::string::npos) << tor.out;
  EXPECT_EQ(Ggswarm("verify " + t / "out2").code, 0);
}

// A free TCP port on 127.0.0.1 (free when asked: the caller binds it soon after).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Writes junk over `dir`'s copy of the model's largest fragment (after a seed on it checked
// it, that seed offers pieces whose bytes do not match their hashes); returns its name.
std::string CorruptLargestFragment(const nlohmann::json& manifest, const std::string& dir) {
  std::string largest;
  uint64_t size = 0;
  for (const auto& f : manifest["fragments"]) {
    if (f["size"].get<uint64_t>() > size) {
      size = f["size"].get<uint64_t>();
      largest = f["file"].get<std::string>();
    }
  }
  std::vector<uint8_t> junk(size);
  for (size_t k = 0; k < junk.size(); ++k) junk[k] = static_cast<uint8_t>(k * 131 + 7);
  std::fstream f(dir + "/" + largest, std::ios::in | std::ios::out | std::ios::binary);
  f.write(reinterpret_cast<const char*>(junk.data()), static_cast<std::streamsize>(size));
  return largest;
}

TEST_F(Swarm, CorruptPiecesFromOneSeedAreRejectedAndFetchedFromTheOther) {
  TempDir t;
  const std::string good = CopyOfFrag(t, "good"), bad = CopyOfFrag(t, "bad");
  // The bad seed is on another loopback address: libtorrent's bans apply to an address,
  // and two hosts that shared one would share a ban.
  std::unique_ptr<Process> pg, pb;
  const int port_bad = StartPeer(pb, "--seed " + bad + " --listen 127.0.0.2:0", t / "b.log");
  ASSERT_GT(port_bad, 0);
  const std::string largest = CorruptLargestFragment(Manifest(), bad);
  // One fetch from both seeds; the good one comes up only once the bad one has sent its
  // bad pieces (so that they are certainly asked of it) and been banned for them.
  const int port_good = FreePort();
  Process f(
      {Cli(), "fetch", InfoHash(), t / "out", "--peer", "127.0.0.1:" + std::to_string(port_good),
       "--peer", "127.0.0.2:" + std::to_string(port_bad), "--timeout", "30"},
      t / "f.log");
  ASSERT_TRUE(f.WaitFor("it sent data that failed the hash check", 30)) << f.Log();
  const int started = StartPeer(
      pg, "--seed " + good + " --listen 127.0.0.1:" + std::to_string(port_good), t / "g.log");
  ASSERT_EQ(started, port_good);
  ASSERT_EQ(f.Wait(60), 0) << f.Log();
  const std::string out = f.Log();
  EXPECT_GT(Field(out, "; ([0-9]+) piece\\(s\\) failed the hash check"), 0u) << out;
  EXPECT_NE(out.find("failed its hash check: discarded"), std::string::npos) << out;
  EXPECT_GT(Field(out, "from 127.0.0.1:" + std::to_string(port_good) + ": ([0-9]+) bytes"), 0u)
      << out;
  EXPECT_EQ(ReadBytes(t / "out/" + largest), ReadBytes(Frag() + "/" + largest));
  Result v = Ggswarm("verify " + t / "out");
  EXPECT_EQ(v.code, 0) << v.out;
}

TEST_F(Swarm, ASeedThatOnlySendsBadDataStaysBannedAndTheFetchSaysSo) {
  TempDir t;
  const std::string bad = CopyOfFrag(t, "bad");
  std::unique_ptr<Process> pb;
  const int port_bad = StartPeer(pb, "--seed " + bad + " --listen 127.0.0.2:0", t / "b.log");
  ASSERT_GT(port_bad, 0);
  CorruptLargestFragment(Manifest(), bad);
  const std::string addr = "127.0.0.2:" + std::to_string(port_bad);
  // Banned, forgiven (its ban might have been one another peer's blocks earned it), and
  // banned again each time: the fetch gives up within its timeout and names the reason.
  Result r = Ggswarm("fetch " + InfoHash() + " " + t / "out --peer " + addr + " --timeout 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("forgetting the bans and asking them again (3 of 3)"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("(4 of 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(addr + ": banned for sending bad data"), std::string::npos) << r.out;
}

TEST_F(Swarm, ASeedKilledMidTransferLeavesTheOtherToFinish) {
  TempDir t;
  std::unique_ptr<Process> p1, p2;
  const int port1 = StartPeer(p1, "--seed " + Frag() + " --upload-limit 2M", t / "p1.log");
  const int port2 = StartPeer(p2, "--seed " + Frag() + " --upload-limit 2M", t / "p2.log");
  ASSERT_GT(port1, 0);
  ASSERT_GT(port2, 0);
  auto fetch = TracedFetch(
      {Cli(), "fetch", InfoHash(), t / "out", "--peer", "127.0.0.1:" + std::to_string(port1),
       "--peer", "127.0.0.1:" + std::to_string(port2), "--timeout", "20"},
      t / "f.log");
  Process& f = *fetch;
  // Both seeds are sending once a few files are complete.
  ASSERT_TRUE(f.WaitFor("finished downloading", 30, 4)) << f.Log();
  ASSERT_TRUE(f.running()) << "the fetch ended before a seed could be killed:\n" << f.Log();
  p1->Kill(SIGKILL);
  ASSERT_EQ(f.Wait(60), 0) << f.Log();
  const std::string out = f.Log();
  // The killed seed had sent part of the model, the other sent the rest.
  EXPECT_GT(Field(out, "from 127.0.0.1:" + std::to_string(port1) + ": ([0-9]+) bytes"), 0u) << out;
  EXPECT_GT(Field(out, "from 127.0.0.1:" + std::to_string(port2) + ": ([0-9]+) bytes"), 0u) << out;
  EXPECT_EQ(Ggswarm("verify " + t / "out").code, 0);
}

TEST_F(Swarm, AKilledFetchResumesWithoutDownloadingAgain) {
  TempDir t;
  std::unique_ptr<Process> p;
  const int port = StartPeer(p, "--seed " + Frag() + " --upload-limit 2M", t / "p.log");
  ASSERT_GT(port, 0);
  {
    auto fetch = TracedFetch({Cli(), "fetch", InfoHash(), t / "out", "--peer",
                              "127.0.0.1:" + std::to_string(port), "--timeout", "20"},
                             t / "f1.log");
    Process& f = *fetch;
    ASSERT_TRUE(f.WaitFor("fetching ", 20)) << f.Log();
    // A quarter of the model on disk (blocks written: the files are sparse), then a resume
    // save written after that.
    const uint64_t total_bytes = fs::file_size(Model());
    auto on_disk = [&] {
      uint64_t n = 0;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(t / "out", ec)) {
        struct stat st {};
        if (::stat(e.path().c_str(), &st) == 0) n += static_cast<uint64_t>(st.st_blocks) * 512;
      }
      return n;
    };
    WaitUntil(60, [&] { return on_disk() >= total_bytes / 4 || !f.running(); });
    ASSERT_GE(on_disk(), total_bytes / 4) << f.Log();
    const std::string resume = t / "out/.ggswarm-fetch.resume";
    const auto since = fs::file_time_type::clock::now();
    ASSERT_TRUE(WaitUntil(30, [&] {
      std::error_code ec;
      return fs::exists(resume, ec) && fs::last_write_time(resume, ec) > since;
    })) << f.Log();
    ASSERT_TRUE(f.running()) << f.Log();
    f.Kill(SIGKILL);
    f.Wait(10);
  }
  Result r = Ggswarm("fetch " + InfoHash() + " " + t / "out" + Peer(port) + " --timeout 20");
  ASSERT_EQ(r.code, 0) << r.out;
  const uint64_t had = Field(r.out, "resumed: ([0-9]+) bytes of fragments already verified");
  const uint64_t got = Field(r.out, "downloaded ([0-9]+) bytes");
  const uint64_t total = fs::file_size(Model());
  ASSERT_NE(had, UINT64_MAX) << r.out;
  EXPECT_GT(had, total / 10) << r.out;
  // Only what was not verified came again (plus pieces in flight at the kill).
  EXPECT_LT(got + had, total + (1u << 20)) << r.out;
  EXPECT_EQ(Ggswarm("verify " + t / "out").code, 0);
  Result re = Ggswarm("reassemble " + t / "out" + " " + t / "copy.gguf");
  ASSERT_EQ(re.code, 0) << re.out;
  EXPECT_EQ(ReadBytes(t / "copy.gguf"), ReadBytes(Model()));
}

// A TCP server on 127.0.0.1 that answers every connection with bytes that are not
// BitTorrent.
class GarbageServer {
 public:
  GarbageServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) break;
        char junk[4096];
        for (size_t i = 0; i < sizeof junk; ++i) junk[i] = static_cast<char>(i * 37 + 11);
        (void)!::send(c, junk, sizeof junk, MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~GarbageServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A peer that answers but has none of the wanted layers (a partial copy) is named for what
// it did, not as "no answer".
TEST_F(Swarm, AStalledFetchSaysWhatEachPeerDid) {
  TempDir t;
  const std::string part = CopyOfFrag(t, "part");
  const nlohmann::json manifest = Manifest();
  for (const auto& f : manifest["fragments"]) {
    if (!f["layer"].is_null() && f["layer"].get<int>() >= 2) {
      ASSERT_TRUE(fs::remove(part + "/" + f["file"].get<std::string>()));
    }
  }
  std::unique_ptr<Process> seed;
  const int port = StartPeer(seed, "--seed " + part, t / "seed.log");
  ASSERT_GT(port, 0);
  Result r =
      Ggswarm("fetch " + InfoHash() + " " + t / "x" + Peer(port) + " --layers 2-3 --timeout 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("127.0.0.1:" + std::to_string(port) +
                       ": connected, but it has none of the wanted pieces"),
            std::string::npos)
      << r.out;
}

TEST_F(Swarm, BadPeersAndBadReferencesFailClearlyAndInBoundedTime) {
  TempDir t;
  std::unique_ptr<Process> seed;
  const int port = StartPeer(seed, "--seed " + Frag(), t / "seed.log");
  ASSERT_GT(port, 0);
  const auto t0 = std::chrono::steady_clock::now();
  // An info-hash nobody has.
  Result r =
      Ggswarm("fetch " + std::string(64, 'a') + " " + t / "x1" + Peer(port) + " --timeout 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no peer sent the metadata of " + std::string(64, 'a')), std::string::npos)
      << r.out;
  // A peer that is not there.
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x2 --peer 127.0.0.1:1 --timeout 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("127.0.0.1:1: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("refused"), std::string::npos) << r.out;
  // A peer that answers with garbage.
  GarbageServer g;
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x3" + Peer(g.port()) + " --timeout 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("127.0.0.1:" + std::to_string(g.port()) + ": "), std::string::npos) << r.out;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 40) << "three fetches with --timeout 3";
  // References and arguments that are wrong before any packet is sent.
  r = Ggswarm("fetch not-a-hash " + t / "x4" + Peer(port));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is not a magnet link, an info-hash"), std::string::npos) << r.out;
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x5 --peer localhost:80");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("expected an IP address and a port"), std::string::npos) << r.out;
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x6" + Peer(port) + " --layers 3-1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("expected a layer range"), std::string::npos) << r.out;
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x7" + Peer(port) + " --layers 2-9");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("which has layers 0-3"), std::string::npos) << r.out;
  // Nothing the user had is touched: a non-empty directory is refused.
  fs::create_directory(t / "mine");
  testing::WriteBytes(t / "mine/notes.txt", {'h', 'i'});
  r = Ggswarm("fetch " + InfoHash() + " " + t / "mine" + Peer(port));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is not empty"), std::string::npos) << r.out;
  EXPECT_EQ(ReadBytes(t / "mine/notes.txt"), (std::vector<uint8_t>{'h', 'i'}));
  // Resume data that is not resume data: named, and kept for the user to remove.
  fs::create_directory(t / "x9");
  testing::WriteBytes(t / "x9/.ggswarm-fetch.resume", {'d', '8', ':', 'x'});
  r = Ggswarm("fetch " + InfoHash() + " " + t / "x9" + Peer(port));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(".ggswarm-fetch.resume: unreadable"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(t / "x9/.ggswarm-fetch.resume"));
  // A torrent file that is not one.
  testing::WriteBytes(t / "bad.torrent", {'d', '4', ':', 'i'});
  r = Ggswarm("fetch " + t / "bad.torrent" + " " + t / "x8" + Peer(port));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not a valid torrent"), std::string::npos) << r.out;
}

TEST_F(Swarm, ATorrentThatDoesNotMatchItsManifestIsRefused) {
  TempDir t;
  // A torrent made outside ggswarm (`ggswarm torrent` checks the directory first): it
  // leaves out one fragment the manifest lists and carries a file the manifest does not.
  fs::create_directory(t / "root");
  const std::string d = t / "root/liar";
  fs::copy(Frag(), d);
  fs::remove(d + "/model.torrent");
  const std::string dropped = Manifest()["fragments"][1]["file"];
  fs::rename(d + "/" + dropped, d + "/extra.dat");
  lt::file_storage files;
  lt::add_files(files, d);
  lt::create_torrent ct(files, 0, lt::create_torrent::v2_only);
  lt::set_piece_hashes(ct, t / "root");
  std::vector<char> buf;
  lt::bencode(std::back_inserter(buf), ct.generate());
  testing::WriteBytes(d + "/model.torrent", std::vector<uint8_t>(buf.begin(), buf.end()));

  std::unique_ptr<Process> seed;
  const int port = StartPeer(seed, "--seed " + d, t / "seed.log");
  ASSERT_GT(port, 0);
  for (const std::string& ref : {d + "/model.torrent", std::string("info-hash")}) {
    std::string r_ref = ref;
    if (ref == "info-hash") {
      std::smatch m;
      const std::string log = seed->Log();
      ASSERT_TRUE(std::regex_search(log, m, std::regex("info-hash ([0-9a-f]{64})")));
      r_ref = m[1];
    }
    const std::string out = t / ("out" + std::to_string(r_ref.size()));
    Result r = Ggswarm("fetch " + r_ref + " " + out + Peer(port) + " --timeout 10");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("does not match its manifest"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out + "/extra.dat"));
  }
}

TEST_F(Swarm, AStoreKeepsSharedFragmentsOnceAndSeedsModelsAddedLater) {
  TempDir t;
  // The same weights under another name: different manifest and torrent, same fragments.
  Result r = Ggswarm("fragment " + Model() + " " + t / "other --chunk-size 256K --name other");
  ASSERT_EQ(r.code, 0) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("info-hash ([0-9a-f]{64})")));
  const std::string other_hash = m[1];
  ASSERT_NE(other_hash, InfoHash());

  // A peer on an empty store, and the models added while it runs.
  std::unique_ptr<Process> peer;
  peer = std::make_unique<Process>(std::vector<std::string>{Cli(), "peer", "--store", t / "store"},
                                   t / "peer.log");
  ASSERT_TRUE(peer->WaitFor("listening on", 20)) << peer->Log();
  r = Ggswarm("store add " + t / "store" + " " + Frag());
  ASSERT_EQ(r.code, 0) << r.out;
  r = Ggswarm("store add " + t / "store" + " " + t / "other");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(" 0 new (0.00 MB)"), std::string::npos) << r.out;
  // One blob per distinct fragment, each linked from both models.
  std::set<std::string> ids;
  const nlohmann::json manifest = Manifest();
  for (const auto& f : manifest["fragments"]) ids.insert(f["id"].get<std::string>());
  size_t blobs = 0;
  for (const auto& e : fs::directory_iterator(t / "store/blobs")) {
    blobs++;
    EXPECT_TRUE(ids.count(e.path().filename().string())) << e.path();
    EXPECT_EQ(fs::hard_link_count(e.path()), 3u) << e.path();  // the blob and two models
  }
  EXPECT_EQ(blobs, ids.size());
  r = Ggswarm("store add " + t / "store" + " " + Frag());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("already holds this model"), std::string::npos) << r.out;
  // A damaged copy is refused, and nothing of it enters the store.
  const std::string damaged = CopyOfFrag(t, "damaged");
  const std::string victim = damaged + "/" + manifest["fragments"][0]["file"].get<std::string>();
  auto bytes = ReadBytes(victim);
  bytes[0] ^= 1;
  testing::WriteBytes(victim, bytes);
  r = Ggswarm("store add " + t / "store2" + " " + damaged);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("does not verify"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_empty(t / "store2/models"));

  ASSERT_TRUE(peer->WaitFor("seeding ", 20, 2)) << peer->Log();
  std::smatch pm;
  const std::string log = peer->Log();
  ASSERT_TRUE(std::regex_search(log, pm, std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)")));
  const int port = std::stoi(pm[1]);
  for (const std::string& h : {InfoHash(), other_hash}) {
    const std::string out = t / ("got-" + h.substr(0, 8));
    r = Ggswarm("fetch " + h + " " + out + Peer(port) + " --timeout 20");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(Ggswarm("verify " + out).code, 0);
  }
  r = Ggswarm("store list " + t / "store");
  EXPECT_NE(r.out.find(InfoHash()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(other_hash), std::string::npos) << r.out;
}

// With the defaults, every socket a peer holds is bound to 127.0.0.1, so nothing it sends
// can leave this machine: no DHT, no local discovery, no UPnP or NAT-PMP.
TEST_F(Swarm, APeerWithDefaultsHoldsOnlyLoopbackSockets) {
  TempDir t;
  std::unique_ptr<Process> p;
  ASSERT_GT(StartPeer(p, "--seed " + Frag(), t / "p.log"), 0);
  std::map<std::string, std::string> local;  // socket inode → local address (hex ip:port)
  for (const char* table : {"/proc/net/tcp", "/proc/net/udp", "/proc/net/tcp6", "/proc/net/udp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::vector<std::string> col;
      for (std::string c; f >> c;) col.push_back(c);
      if (col.size() > 9) local[col[9]] = std::string(table) + " " + col[1];
    }
  }
  int sockets = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(p->pid()) + "/fd")) {
    std::error_code ec;
    const std::string target = fs::read_symlink(e.path(), ec).string();
    if (target.rfind("socket:[", 0) != 0) continue;
    auto it = local.find(target.substr(8, target.size() - 9));
    if (it == local.end()) continue;  // not an IP socket (netlink, unix)
    sockets++;
    EXPECT_NE(it->second.find(" 0100007F:"), std::string::npos)
        << "bound beyond loopback: " << it->second;
  }
  EXPECT_GT(sockets, 0);  // it does listen
}

}  // namespace
}  // namespace ggswarm
