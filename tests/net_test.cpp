// The swarm's pieces in one process: selections, addresses, model references, torrents
// of fragment directories and what a torrent must agree with.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "base/sha256.h"
#include "convert/synth.h"
#include "fragments/fragments.h"
#include "fragments/selection.h"
#include "net/chain_plan.h"
#include "net/chain_verify.h"
#include "net/dht.h"
#include "net/session.h"
#include "net/stage_wire.h"
#include "net/store.h"
#include "net/torrent.h"
#include "test_util.h"

namespace ggswarm {
namespace {

namespace fs = std::filesystem;
using fragments::FragmentEntry;
using fragments::Manifest;
using fragments::Selection;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

FragmentEntry Frag(const std::string& file, const std::string& kind, int layer,
                   uint64_t size = 10) {
  FragmentEntry f;
  f.file = file;
  f.kind = kind;
  f.layer = layer;
  f.size = size;
  return f;
}

Manifest Toy(bool with_output) {
  Manifest m;
  m.name = "toy";
  m.header_size = 100;
  m.fragments = {Frag("embd.dat", "embedding", -1), Frag("q0.dat", "attention", 0),
                 Frag("f0.dat", "feed_forward", 0), Frag("q1.dat", "attention", 1),
                 Frag("n1.dat", "norm", 1),         Frag("q2.dat", "attention", 2),
                 Frag("gap.dat", "gap", -1),        Frag("norm.dat", "norm", -1),
                 Frag("rope.dat", "other", -1)};
  if (with_output) m.fragments.push_back(Frag("out.dat", "output", -1));
  return m;
}

std::set<std::string> Wanted(const Selection& s, const Manifest& m) {
  std::set<std::string> w;
  for (const auto& f : m.fragments) {
    if (s.Wants(f, m)) w.insert(f.file);
  }
  return w;
}

TEST(Selection, LayersEmbeddingAndHead) {
  const Manifest m = Toy(true);
  auto all = Selection::Parse("", false, false);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Wanted(*all, m).size(), m.fragments.size());

  auto mid = Selection::Parse("1-1", false, false);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(Wanted(*mid, m), (std::set<std::string>{"q1.dat", "n1.dat", "rope.dat"}));
  auto first = Selection::Parse("0", true, false);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Wanted(*first, m), (std::set<std::string>{"embd.dat", "q0.dat", "f0.dat", "rope.dat"}));
  auto last = Selection::Parse("2-2", false, true);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Wanted(*last, m), (std::set<std::string>{"q2.dat", "norm.dat", "out.dat", "rope.dat"}));
  // A model whose head is its embedding (tied weights): the head brings the embedding.
  EXPECT_EQ(Wanted(*last, Toy(false)),
            (std::set<std::string>{"q2.dat", "norm.dat", "embd.dat", "rope.dat"}));
  EXPECT_EQ(last->Describe(), "layers 2-2 + head");
}

TEST(Selection, BadRangesAreRefusedWithTheReason) {
  for (const char* bad : {"3-1", "a-b", "-1", "1-", "1-2-3", "99999999999", " 1"}) {
    auto s = Selection::Parse(bad, false, false);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("expected a layer range"), std::string::npos);
  }
  EXPECT_FALSE(Selection::Parse("", true, false).ok());  // --with-embedding needs --layers
  auto s = Selection::Parse("1-5", false, false);
  ASSERT_TRUE(s.ok());
  Status st = s->Check(Toy(true));
  EXPECT_NE(st.message().find("which has layers 0-2"), std::string::npos) << st.message();
}

TEST(Selection, JsonRoundTripAndCorruption) {
  auto s = Selection::Parse("3-7", true, false);
  ASSERT_TRUE(s.ok());
  auto back = Selection::FromJson(s->ToJson().dump());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->Describe(), s->Describe());
  for (const char* bad :
       {"", "[]", "{\"schema\":\"x\"}", "{\"schema\":\"ggswarm.selection\"}",
        "{\"schema\":\"ggswarm.selection\",\"embedding\":1,\"head\":false,\"layers\":null}",
        "{\"schema\":\"ggswarm.selection\",\"embedding\":true,\"head\":false,\"layers\":[5,2]}",
        "{\"schema\":\"ggswarm.selection\",\"embedding\":true,\"head\":false,\"layers\":[-1,2]}",
        "{\"schema\":\"ggswarm.selection\",\"embedding\":true,\"head\":false,\"layers\":[1]}"}) {
    auto r = Selection::FromJson(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("selection.json"), std::string::npos);
  }
}

TEST(Endpoints, AddressesAndRates) {
  auto e = net::ParseEndpoint("127.0.0.1:6881");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 6881);
  auto v6 = net::ParseEndpoint("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"localhost:80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                          "127.0.0.1:-1", ":80", "[::1:80", "1.2.3.4:8x"}) {
    EXPECT_FALSE(net::ParseEndpoint(bad).ok()) << bad;
  }
  EXPECT_FALSE(net::ParseEndpoints({"127.0.0.1:0"}).ok());  // not a peer's port
  EXPECT_EQ(*net::ParseRate("500K"), 500 * 1024);
  EXPECT_EQ(*net::ParseRate("2M"), 2 << 20);
  EXPECT_EQ(*net::ParseRate("1000"), 1000);
  for (const char* bad : {"", "fast", "-1", "5T", "9999G"}) EXPECT_FALSE(net::ParseRate(bad).ok());
}

// The chain choice that clients and the swarm simulator share: at each position the stage
// asked for, else one running the kernels asked for, else one with free sessions, else the
// nearest; gaps named.
TEST(ChainPlan, PicksByPreferenceThenKernelsThenFreeSessionsThenRoundTrip) {
  using net::StageChoice;
  //                          first end  preferred free   rtt
  std::vector<StageChoice> s = {{0, 2, false, true, 5.0},   // 0
                                {0, 2, false, true, 1.0},   // 1: nearest of the free
                                {0, 2, false, false, 0.1},  // 2: nearer, but full
                                {2, 4, false, true, 1.0},   // 3
                                {2, 3, true, false, 9.0},   // 4: asked for, full and far
                                {3, 4, false, true, 3.0}};  // 5
  auto plan = net::PlanChain(s, 4);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(*plan, (std::vector<size_t>{1, 4, 5}));
  s[4].preferred = false;
  EXPECT_EQ(*net::PlanChain(s, 4), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(net::BestStage({}), -1);
  // The kernels asked for (a checker's): after the stage asked for, before load and distance.
  //                              first end  preferred free   rtt  same kernels
  std::vector<StageChoice> k = {{0, 2, false, true, 1.0, false},  // 0
                                {0, 2, false, false, 9.0, true},  // 1: same kernels, full, far
                                {0, 2, false, true, 2.0, true}};  // 2: same kernels, free
  EXPECT_EQ(net::BestStage(k), 2);
  k[2].sessions_free = false;
  EXPECT_EQ(net::BestStage(k), 2);  // both full: the nearer
  k[0].preferred = true;
  EXPECT_EQ(net::BestStage(k), 0);
  // Layers 2-3 served by nobody starting at 2: the gap is named up to the next start.
  std::vector<StageChoice> gap = {{0, 2, false, true, 1}, {3, 4, false, true, 1}};
  auto g = net::PlanChain(gap, 4);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(), "no live peer serves layers 2-2");
  // A range past the model's last layer is not a stage of it.
  std::vector<StageChoice> past = {{0, 5, false, true, 1}};
  EXPECT_FALSE(net::PlanChain(past, 4).ok());
}

// How far apart two computations of the same logits are, for the verifier: the largest
// difference over the smaller range, hand-computed; a stage widening its own range does not
// loosen it, and a NaN or an infinity on one side only never agrees.
TEST(ChainVerify, LogitDifferenceIsTheLargestGapOverTheSmallerRange) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  using V = std::vector<float>;
  auto diff = [](const V& a, const V& b) { return net::LogitDifference(a, b); };
  EXPECT_EQ(diff({0, 1, 4}, {0, 1, 4}), 0);
  EXPECT_DOUBLE_EQ(diff({0, 1, 4}, {0, 1.5f, 4}), 0.5 / 4);
  EXPECT_DOUBLE_EQ(diff({0, 1.5f, 4}, {0, 1, 4}), 0.5 / 4);
  // A spike of 96 widens b's range to 100, not the bound: 96 / 4.
  EXPECT_DOUBLE_EQ(diff({0, 1, 4}, {0, 1, 100}), 96.0 / 4);
  EXPECT_DOUBLE_EQ(diff({-2, 1, 2}, {-2, 1.2f, 2}), double(1.2f - 1) / 4);
  EXPECT_TRUE(std::isinf(diff({0, 1, 4}, {0, nan, 4})));
  EXPECT_TRUE(std::isinf(diff({nan, nan, nan}, {0, 1, 4})));
  EXPECT_TRUE(std::isinf(diff({0, 1, inf}, {0, 1, 4})));
  EXPECT_EQ(diff({0, nan, 4}, {0, nan, 4}), 0);  // the same bits
  EXPECT_TRUE(std::isinf(diff({0, 1, 4}, {0, 1})));
  EXPECT_EQ(diff({3, 3}, {3, 3}), 0);
  EXPECT_TRUE(std::isinf(diff({3, 3}, {2, 2})));  // nothing to scale by
  EXPECT_DOUBLE_EQ(net::kVerifyTolerance, 2 * model::kKernelLogitTolerance);
}

// Logits a stage sends are checked for NaN and infinity before anything samples them.
TEST(StageWire, AllFiniteFindsANaNOrAnInfinityAnywhere) {
  const std::vector<float> good = {0, -1.5f, 3e38f, -3e38f, 1e-45f};
  EXPECT_TRUE(net::AllFinite(net::ToWire(good.data(), good.size(), stage::v1::F32)));
  for (size_t i = 0; i < good.size(); ++i)
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      std::vector<float> v = good;
      v[i] = bad;
      EXPECT_FALSE(net::AllFinite(net::ToWire(v.data(), v.size(), stage::v1::F32))) << i;
    }
}

// Whether answering stages cover a model's layers (a DHT lookup stops waiting then): some
// path of ranges from layer 0 to the last, whatever order they come in; a gap, a range past
// the last layer or an empty one does not count.
TEST(ChainPlan, RangesCoverTheLayersWhenAPathRunsFromTheFirstToTheLast) {
  EXPECT_TRUE(net::CoversLayers({{2, 4}, {0, 1}, {1, 2}}, 4));
  EXPECT_TRUE(net::CoversLayers({{0, 3}, {0, 1}, {3, 4}, {1, 2}}, 4));  // 1-2 leads nowhere
  EXPECT_FALSE(net::CoversLayers({{0, 1}, {2, 4}}, 4));                 // layer 1 missing
  EXPECT_FALSE(net::CoversLayers({{0, 2}, {2, 5}}, 4));                 // past the last
  EXPECT_FALSE(net::CoversLayers({{0, 2}, {2, 2}}, 2 + 1));             // an empty range
  EXPECT_FALSE(net::CoversLayers({}, 4));
  EXPECT_FALSE(net::CoversLayers({{0, 1}}, 0));
}

// A replay (after a failure, or to a checker): each batch as it was sent, consecutive
// single-token steps together up to the exact run, never a single step joined to a batch.
TEST(ChainPlan, ReplayJoinsSingleStepsUpToTheExactRun) {
  // A prompt in two chunks, 7 single steps, a 3-token batch (a truncated sequence's new
  // turn), 2 more single steps.
  const std::vector<int> sent = {16, 5, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1};
  EXPECT_EQ(net::ReplayCalls(sent, 31), (std::vector<int>{16, 5, 7, 3, 2}));
  EXPECT_EQ(net::ReplayCalls(sent, 3), (std::vector<int>{16, 5, 3, 3, 1, 3, 2}));
  EXPECT_EQ(net::ReplayCalls(sent, 1), sent);
  EXPECT_EQ(net::ReplayCalls(std::vector<int>(65, 1), 31), (std::vector<int>{31, 31, 3}));
  EXPECT_TRUE(net::ReplayCalls({}, 31).empty());
  // Stages that take fewer positions now than the batches had: runs no longer than they
  // take, and longer batches cut.
  EXPECT_EQ(net::ReplayCalls(sent, 31, 4), (std::vector<int>{4, 4, 4, 4, 4, 1, 4, 3, 3, 2}));
}

// The DHT keys are SHA-1 of fixed texts (values from coreutils' sha1sum), so that any
// implementation can find ggswarm's stages.
TEST(DhtKeys, AreTheSha1OfTheirTexts) {
  EXPECT_EQ(ToHex(net::ModelKey("70f9")), "cdf7b60877d289b4af86ddb3b5ce4d7abe9f6118");
  EXPECT_EQ(ToHex(net::LayerKey("70f9", 12)), "42bed211edfd1a0e0b07df998bbb598e8e0719bf");
}

// A DHT node refuses an address that is not one, and never takes a name (no DNS lookups).
TEST(DhtKeys, BootstrapNodesAreIpAddresses) {
  auto n = net::DhtNode::Start({"", {"router.bittorrent.com:6881"}});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("--dht-bootstrap"), std::string::npos)
      << n.status().ToString();
  auto m = net::DhtNode::Start({"127.0.0.1:70000", {}});
  EXPECT_FALSE(m.ok());
}

TEST(ModelRef, MagnetHashesAndFiles) {
  const std::string v2(64, 'a');
  auto h = net::ParseModelRef(v2);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->info_hashes.has_v2());
  EXPECT_EQ(static_cast<unsigned char>(h->info_hashes.v2[0]), 0xaa);
  auto h1 = net::ParseModelRef(std::string(40, 'b'));
  ASSERT_TRUE(h1.ok());
  EXPECT_TRUE(h1->info_hashes.has_v1());
  // Trackers and peers named in a magnet link are dropped: only --peer is used.
  auto mag = net::ParseModelRef("magnet:?xt=urn:btmh:1220" + v2 +
                                "&tr=http://tracker.example/announce&x.pe=10.1.2.3:6881");
  ASSERT_TRUE(mag.ok());
  EXPECT_TRUE(mag->trackers.empty());
  EXPECT_TRUE(mag->peers.empty());
  EXPECT_EQ(mag->info_hashes.v2, h->info_hashes.v2);
  for (const char* bad : {"abc", "magnet:?xt=nothing", "/no/such/file.torrent"}) {
    EXPECT_FALSE(net::ParseModelRef(bad).ok()) << bad;
  }
}

class TorrentOfDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions o{*FindPreset("micro"), *ParseTypeMix("Q8_0"), 3, "tor", "spm"};
    ASSERT_TRUE(Synthesize(o, t_ / "m.gguf", false).ok());
    fragments::FragmentOptions fo;
    fo.chunk_size = 16 << 10;
    auto r = fragments::FragmentModel(t_ / "m.gguf", Dir(), fo);
    ASSERT_TRUE(r.ok()) << r.status().message();
    manifest_ = r->manifest;
  }
  std::string Dir() const { return t_ / "frag"; }
  TempDir t_;
  Manifest manifest_;
};

TEST_F(TorrentOfDirectory, CoversExactlyTheManifestsFiles) {
  auto sum = net::MakeTorrent(Dir(), {});
  ASSERT_TRUE(sum.ok()) << sum.status().message();
  EXPECT_EQ(sum->info_hash.size(), 64u);
  EXPECT_TRUE(sum->info_hash_v1.empty());
  EXPECT_EQ(sum->files, static_cast<int>(manifest_.fragments.size()) + 2);
  EXPECT_EQ(sum->magnet.rfind("magnet:?xt=urn:btmh:1220" + sum->info_hash, 0), 0u) << sum->magnet;
  auto t = net::LoadTorrent(Dir() + "/model.torrent");
  ASSERT_TRUE(t.ok());
  std::map<lt::file_index_t, std::string> renamed;
  ASSERT_TRUE(net::FlatFileNames(t->ti->files(), &renamed).ok());
  EXPECT_EQ(renamed.size(), manifest_.fragments.size() + 2);
  EXPECT_TRUE(net::CheckTorrentMatchesManifest(t->ti->files(), manifest_).ok());

  // The same directory hashes to the same torrent; a hybrid one adds a v1 hash.
  const auto first = ReadBytes(Dir() + "/model.torrent");
  EXPECT_EQ(net::MakeTorrent(Dir(), {}).status().code(), Status::Code::kExists);
  net::TorrentOptions o;
  o.overwrite = true;
  ASSERT_TRUE(net::MakeTorrent(Dir(), o).ok());
  auto again = net::LoadTorrent(Dir() + "/model.torrent");
  EXPECT_EQ(net::Summarize(*again->ti).info_hash, sum->info_hash);
  o.hybrid = true;
  auto hybrid = net::MakeTorrent(Dir(), o);
  ASSERT_TRUE(hybrid.ok());
  EXPECT_EQ(hybrid->info_hash_v1.size(), 40u);
  // v1 only: one SHA-1 info-hash, no pad files (what v1-only clients refuse in hybrids),
  // the same files; --hybrid and --v1 together are refused.
  o.v1 = true;
  EXPECT_FALSE(net::MakeTorrent(Dir(), o).ok());
  o.hybrid = false;
  auto v1 = net::MakeTorrent(Dir(), o);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->info_hash.size(), 40u);
  EXPECT_TRUE(v1->info_hash_v1.empty());
  EXPECT_EQ(v1->files, sum->files);
  auto v1t = net::LoadTorrent(Dir() + "/model.torrent");
  ASSERT_TRUE(v1t.ok());
  EXPECT_FALSE(v1t->ti->info_hashes().has_v2());
  for (lt::file_index_t i : v1t->ti->files().file_range())
    EXPECT_FALSE(v1t->ti->files().pad_file_at(i));
  EXPECT_TRUE(net::CheckTorrentMatchesManifest(v1t->ti->files(), manifest_).ok());

  // A manifest that disagrees with the torrent, each way.
  Manifest m = manifest_;
  m.fragments[0].size += 1;
  EXPECT_NE(
      net::CheckTorrentMatchesManifest(t->ti->files(), m).message().find("bytes in the torrent"),
      std::string::npos);
  m = manifest_;
  m.fragments.pop_back();
  EXPECT_NE(net::CheckTorrentMatchesManifest(t->ti->files(), m).message().find("does not list"),
            std::string::npos);
  m = manifest_;
  m.fragments.push_back(m.fragments.back());
  m.fragments.back().file = "more.dat";
  EXPECT_NE(net::CheckTorrentMatchesManifest(t->ti->files(), m).message().find("does not hold"),
            std::string::npos);
}

TEST_F(TorrentOfDirectory, RefusesADirectoryThatDoesNotVerify) {
  const std::string victim = Dir() + "/" + manifest_.fragments[2].file;
  auto b = ReadBytes(victim);
  b[0] ^= 1;
  WriteBytes(victim, b);
  auto sum = net::MakeTorrent(Dir(), {});
  ASSERT_FALSE(sum.ok());
  EXPECT_NE(sum.status().message().find("does not verify"), std::string::npos);
  EXPECT_FALSE(fs::exists(Dir() + "/model.torrent"));
  net::TorrentOptions o;
  o.piece_size = 1000;
  EXPECT_FALSE(net::MakeTorrent(Dir(), o).ok());
}

// Truncated or bit-flipped torrents: an error or a valid torrent, never a crash.
TEST_F(TorrentOfDirectory, CorruptTorrentFilesAreErrors) {
  ASSERT_TRUE(net::MakeTorrent(Dir(), {}).ok());
  const auto good = ReadBytes(Dir() + "/model.torrent");
  const std::string p = t_ / "c.torrent";
  int errors = 0;
  for (size_t n = 0; n < good.size(); n += std::max<size_t>(1, good.size() / 97)) {
    WriteBytes(p, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)));
    auto t = net::LoadTorrent(p);
    EXPECT_FALSE(t.ok()) << "truncated at " << n;
    if (!t.ok()) {
      errors++;
      EXPECT_NE(t.status().message().find("c.torrent"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 50);
  for (size_t i = 0; i < good.size(); i += 7) {
    auto b = good;
    b[i] ^= 0x5a;
    WriteBytes(p, b);
    auto t = net::LoadTorrent(p);
    if (t.ok()) (void)net::FlatFileNames(t->ti->files(), nullptr);
  }
}

// A folder that is not a store is not turned into one: a fragment directory given as
// --store is refused with the command that was meant, and nothing is written into it.
TEST(Store, AFolderThatIsNotAStoreIsRefusedAndLeftAlone) {
  TempDir t;
  SynthOptions o{*FindPreset("micro"), *ParseTypeMix("Q8_0"), 3, "m"};
  ASSERT_TRUE(Synthesize(o, t / "m.gguf", false).ok());
  ASSERT_TRUE(fragments::FragmentModel(t / "m.gguf", t / "frags", {}).ok());
  auto s = net::Store::Open(t / "frags", true);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("is not a store"), std::string::npos);
  EXPECT_NE(s.status().message().find("--seed " + t / "frags"), std::string::npos);
  EXPECT_NE(s.status().message().find("ggswarm store add STORE"), std::string::npos);
  EXPECT_FALSE(fs::exists(t / "frags/blobs"));
  fs::create_directories(t / "notes");
  WriteBytes(t / "notes/a.txt", {1});
  EXPECT_FALSE(net::Store::Open(t / "notes", true).ok());
  // An empty folder, a missing one and a store are fine.
  fs::create_directories(t / "empty");
  EXPECT_TRUE(net::Store::Open(t / "empty", true).ok());
  EXPECT_TRUE(net::Store::Open(t / "new", true).ok());
  EXPECT_TRUE(net::Store::Open(t / "new", false).ok());
}

}  // namespace
}  // namespace ggswarm
