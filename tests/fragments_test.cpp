// fragment → verify → reassemble: byte-identical originals, and every corruption named.
#include "fragments/fragments.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>

#include "convert/synth.h"
#include "fragments/fragment_source.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace ggswarm::fragments {
namespace {

using ggswarm::testing::ReadBytes;
using ggswarm::testing::SharedModels;
using ggswarm::testing::TempDir;
using ggswarm::testing::WriteBytes;
namespace fs = std::filesystem;

// Fragments `model`, verifies, reassembles and checks the result equals the original.
void RoundTrip(const std::string& model, uint64_t chunk, const TempDir& tmp) {
  const std::string dir = tmp / "frags";
  fs::remove_all(dir);
  FragmentOptions o;
  o.chunk_size = chunk;
  auto r = FragmentModel(model, dir, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto v = VerifyDirectory(dir);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->ok()) << v->problems.front().file << ": " << v->problems.front().what;
  const std::string out = tmp / "re.gguf";
  fs::remove(out);
  auto re = Reassemble(dir, out, false);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  EXPECT_EQ(ReadBytes(out), ReadBytes(model));

  // Every fragment: whole rows, within the chunk size (unless one row is larger), named by
  // its role and hash.
  auto f = gguf::GgufFile::Open(model);
  ASSERT_TRUE(f.ok());
  const std::regex name_re(R"(^[A-Za-z0-9._-]+?_(L\d+_)?[A-Za-z0-9_-]+_S\d+_[0-9a-f]{16}\.dat$)");
  for (const FragmentEntry& e : r->manifest.fragments) {
    ASSERT_NE(e.kind, "gap");
    const gguf::TensorInfo* t = f->FindTensor(e.tensor);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(e.size % t->row_bytes(), 0u) << e.file;
    EXPECT_TRUE(e.size <= chunk || e.row_end - e.row_begin == 1) << e.file;
    EXPECT_TRUE(std::regex_match(e.file, name_re)) << e.file;
    EXPECT_EQ(e.file.find(e.id.substr(0, 16)), e.file.size() - 20);
  }
}

TEST(Fragments, EverySharedModelRoundTrips) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  TempDir tmp;
  for (const std::string& m : SharedModels()) {
    SCOPED_TRACE(m);
    RoundTrip(m, 16 << 10, tmp);  // 16 KiB: forces multi-shard tensors even in tiny models
    RoundTrip(m, kDefaultChunkSize, tmp);
  }
}

TEST(Fragments, SynthModelsOfEveryTypeRoundTrip) {
  TempDir tmp;
  for (const char* type : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                           "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "Q4_K_M"}) {
    SCOPED_TRACE(type);
    SynthOptions o{*FindPreset("tiny"), *ParseTypeMix(type), 3, "t"};
    const std::string model = tmp / (std::string(type) + ".gguf");
    ASSERT_TRUE(Synthesize(o, model, false).ok());
    RoundTrip(model, 40 << 10, tmp);
  }
}

TEST(Fragments, TinyLlamaShapeRoundTrips) {
  // TinyLlama-1.1B's exact tensor shapes (n_embd 2048, 32 heads, 4 KV heads, n_ff 5632,
  // vocabulary 32000) with 2 of its 22 layers, to keep the test quick: about 234 MB.
  TempDir tmp;
  ModelShape s = *FindPreset("tinyllama-1.1b");
  s.n_layer = 2;
  SynthOptions o{s, *ParseTypeMix("Q8_0"), 1, "tinyllama"};
  ASSERT_TRUE(Synthesize(o, tmp / "tl.gguf", false).ok());
  RoundTrip(tmp / "tl.gguf", kDefaultChunkSize, tmp);
  auto m = Manifest::Load(tmp / "frags");
  ASSERT_TRUE(m.ok());
  // token_embd (32000 rows of 2176 bytes = 69.6 MB) is cut into 10 MiB shards of 4818 rows.
  int shards = 0;
  for (const auto& e : m->fragments) shards += e.tensor == "token_embd.weight";
  EXPECT_EQ(shards, 7);
  EXPECT_EQ(m->hyperparameters.at("embedding_length"), 2048);
  EXPECT_EQ(m->hyperparameters.at("block_count"), 2);
}

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions o{*FindPreset("micro"), *ParseTypeMix("Q8_0"), 5, "m"};
    model_ = tmp_ / "m.gguf";
    ASSERT_TRUE(Synthesize(o, model_, false).ok());
    dir_ = tmp_ / "frags";
    auto r = FragmentModel(model_, dir_, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    manifest_ = r->manifest;
  }
  // The single problem verify reports.
  VerifyProblem OnlyProblem() {
    auto v = VerifyDirectory(dir_);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok() || v->problems.size() != 1) {
      ADD_FAILURE() << "expected exactly one problem, got " << (v.ok() ? v->problems.size() : 0);
      return {};
    }
    return v->problems[0];
  }
  std::string Path(const FragmentEntry& e) { return dir_ + "/" + e.file; }
  // Reassembly must fail, say `what`, and leave no output file behind.
  void ExpectReassemblyFails(const std::string& what) {
    auto r = Reassemble(dir_, tmp_ / "out.gguf", false);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
    EXPECT_FALSE(fs::exists(tmp_ / "out.gguf"));
    for (const auto& e : fs::directory_iterator(tmp_.path())) {
      EXPECT_EQ(e.path().string().find("partial"), std::string::npos) << e.path();
    }
  }
  TempDir tmp_;
  std::string model_, dir_;
  Manifest manifest_;
};

TEST_F(CorruptionTest, FlippedByteIsNamed) {
  const FragmentEntry& e = manifest_.fragments[3];
  auto b = ReadBytes(Path(e));
  b[b.size() / 2] ^= 0x01;
  WriteBytes(Path(e), b);
  VerifyProblem p = OnlyProblem();
  EXPECT_EQ(p.file, e.file);
  EXPECT_NE(p.what.find("SHA-256 mismatch"), std::string::npos);
  ExpectReassemblyFails(e.file);
}

TEST_F(CorruptionTest, TruncatedFragmentIsNamed) {
  const FragmentEntry& e = manifest_.fragments[1];
  fs::resize_file(Path(e), e.size - 1);
  VerifyProblem p = OnlyProblem();
  EXPECT_EQ(p.file, e.file);
  EXPECT_NE(p.what.find("size"), std::string::npos);
  ExpectReassemblyFails(e.file);
}

TEST_F(CorruptionTest, MissingFragmentsAreAllListed) {
  fs::remove(Path(manifest_.fragments[0]));
  fs::remove(Path(manifest_.fragments.back()));
  auto v = VerifyDirectory(dir_);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->problems.size(), 2u);
  for (const auto& p : v->problems) EXPECT_EQ(p.what, "missing");
  ExpectReassemblyFails(manifest_.fragments[0].file);
}

TEST_F(CorruptionTest, CorruptHeaderIsNamed) {
  auto b = ReadBytes(dir_ + "/gguf_header.dat");
  b[40] ^= 0x20;
  WriteBytes(dir_ + "/gguf_header.dat", b);
  VerifyProblem p = OnlyProblem();
  EXPECT_EQ(p.file, kHeaderFile);
  ExpectReassemblyFails("gguf_header.dat");
}

std::string ReadText(const std::string& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void EditManifest(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(ReadText(dir + "/manifest.json"));
  edit(j);
  std::ofstream(dir + "/manifest.json") << j.dump(1);
}

TEST_F(CorruptionTest, ManifestThatIsNotJson) {
  std::ofstream(dir_ + "/manifest.json") << "{\"schema\": ";
  auto v = VerifyDirectory(dir_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("not valid JSON"), std::string::npos);
  ExpectReassemblyFails("not valid JSON");
}

TEST_F(CorruptionTest, ManifestWithAnEditedHash) {
  EditManifest(dir_, [](auto& j) { j["fragments"][2]["id"] = std::string(64, 'a'); });
  auto v = VerifyDirectory(dir_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("fragments[2]"), std::string::npos) << v.status().message();
}

TEST_F(CorruptionTest, ManifestWithAnEditedTensorShape) {
  EditManifest(dir_, [](auto& j) { j["fragments"][2]["shape"][1] = 7; });
  VerifyProblem p = OnlyProblem();
  EXPECT_NE(p.what.find("does not match tensor"), std::string::npos) << p.what;
  ExpectReassemblyFails("does not match tensor");
}

TEST_F(CorruptionTest, ManifestWithAMissingField) {
  EditManifest(dir_, [](auto& j) { j["fragments"][0].erase("size"); });
  auto v = VerifyDirectory(dir_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("fragments[0]"), std::string::npos);
}

TEST_F(CorruptionTest, ManifestWithAPathInAFileName) {
  EditManifest(dir_, [&](auto& j) {
    j["fragments"][0]["file"] = "../" + j["fragments"][0]["file"].template get<std::string>();
  });
  auto v = VerifyDirectory(dir_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("unsafe"), std::string::npos);
}

// Every fragment right, the manifest's whole-file SHA-256 wrong: verify says so, as
// reassemble does.
TEST_F(CorruptionTest, ManifestWithAWrongModelHash) {
  EditManifest(dir_, [](auto& j) { j["model"]["sha256"] = std::string(64, '0'); });
  VerifyProblem p = OnlyProblem();
  EXPECT_EQ(p.file, kManifestFile);
  EXPECT_NE(p.what.find("not the manifest's " + std::string(64, '0')), std::string::npos) << p.what;
  ExpectReassemblyFails("differs from the manifest");
  auto v = VerifyDirectory(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->whole_file_checked);
}

TEST_F(CorruptionTest, AGoodCopyIsCheckedWhole) {
  auto v = VerifyDirectory(dir_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  EXPECT_TRUE(v->whole_file_checked);
  EXPECT_EQ(v->bytes_checked, [&] {
    uint64_t n = 0;
    for (const auto& f : manifest_.fragments) n += f.size;
    return n;
  }());
}

// A dangling symbolic link at the output is something there: not replaced without --force.
TEST_F(CorruptionTest, ADanglingSymlinkIsNotReplaced) {
  fs::create_symlink(tmp_ / "nowhere.gguf", tmp_ / "link.gguf");
  auto r = Reassemble(dir_, tmp_ / "link.gguf", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kExists);
  EXPECT_TRUE(fs::is_symlink(tmp_ / "link.gguf"));
  EXPECT_EQ(fs::read_symlink(tmp_ / "link.gguf"), tmp_ / "nowhere.gguf");
}

// The pid of a process that has ended (and been reaped), for stale temporary names.
pid_t DeadPid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int st = 0;
  ::waitpid(p, &st, 0);
  return p;
}

// A run killed mid-write leaves "OUT.partial-PID"; the next run of the same output removes
// those of processes that are gone, and leaves a live process's alone.
TEST_F(CorruptionTest, StalePartialsOfTheOutputAreRemoved) {
  const std::string dead = tmp_ / ("out.gguf.partial-" + std::to_string(DeadPid()));
  const std::string live = tmp_ / ("out.gguf.partial-" + std::to_string(::getppid()));
  const std::string other = tmp_ / ("other.gguf.partial-" + std::to_string(DeadPid()));
  for (const auto& p : {dead, live, other}) WriteBytes(p, {1, 2, 3});
  ASSERT_TRUE(Reassemble(dir_, tmp_ / "out.gguf", false).ok());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));  // not this output's
}

// --force into another model's folder: that model's files go, the user's own stay.
TEST_F(CorruptionTest, ForceReplacesTheOldModelsFilesOnly) {
  SynthOptions o{*FindPreset("micro"), *ParseTypeMix("Q4_0"), 9, "other"};
  ASSERT_TRUE(Synthesize(o, tmp_ / "other.gguf", false).ok());
  WriteBytes(dir_ + "/notes.txt", {'h', 'i'});
  FragmentOptions force;
  force.force = true;
  auto r = FragmentModel(tmp_ / "other.gguf", dir_, force);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::set<std::string> want = {kManifestFile, kHeaderFile, "notes.txt"};
  for (const auto& f : r->manifest.fragments) want.insert(f.file);
  std::set<std::string> have;
  for (const auto& e : fs::directory_iterator(dir_)) have.insert(e.path().filename().string());
  EXPECT_EQ(have, want);
  EXPECT_TRUE(VerifyDirectory(dir_)->ok());
  for (const auto& e : fs::directory_iterator(tmp_.path()))
    EXPECT_EQ(e.path().string().find("partial"), std::string::npos) << e.path();
}

// A tensor name that is not UTF-8 cannot go into manifest.json: refused before anything is
// written, and no folder appears under the output's name.
TEST(Fragments, NonUtf8TensorNamesAreRefusedBeforeWriting) {
  TempDir tmp;
  gguf::GgufWriter w;
  w.AddTensor("good", GgmlType::F32, {8});
  w.AddTensor("bad\xff\xfename", GgmlType::F32, {8});
  ASSERT_TRUE(w.Write(tmp / "b.gguf", false, [](size_t, OutputFile& out) {
                 return out.Write(std::vector<uint8_t>(32, 1));
               }).ok());
  auto r = FragmentModel(tmp / "b.gguf", tmp / "d", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tensor name \"bad\\xff\\xfename\" is not valid UTF-8"),
            std::string::npos)
      << r.status().message();
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"b.gguf"});
}

// A staging folder left by a killed run is cleared by the next; an input that is a FIFO is
// refused at once (not waited on), and nothing appears under the output's name.
TEST(Fragments, StaleStagingIsClearedAndAFifoInputIsRefused) {
  TempDir tmp;
  SynthOptions o{*FindPreset("micro"), *ParseTypeMix("Q8_0"), 5, "m"};
  ASSERT_TRUE(Synthesize(o, tmp / "m.gguf", false).ok());
  // A stale staging folder of a process that is gone is cleared first.
  const std::string stale = tmp / ("d.partial-" + std::to_string(DeadPid()));
  fs::create_directories(stale);
  WriteBytes(stale + "/x.dat", {1});
  auto ok = FragmentModel(tmp / "m.gguf", tmp / "d", {});
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(fs::exists(stale));
  // A FIFO in place of the model.
  fs::rename(tmp / "m.gguf", tmp / "m2.gguf");
  ASSERT_EQ(::mkfifo((tmp / "m.gguf").c_str(), 0644), 0);
  auto r = FragmentModel(tmp / "m.gguf", tmp / "e", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(fs::exists(tmp / "e"));
}

TEST_F(CorruptionTest, NothingIsOverwritten) {
  // A non-empty output directory is refused, and so is an existing reassembly target.
  auto again = FragmentModel(model_, dir_, {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kExists);
  WriteBytes(tmp_ / "keep.gguf", {1, 2, 3});
  auto r = Reassemble(dir_, tmp_ / "keep.gguf", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kExists);
  EXPECT_EQ(ReadBytes(tmp_ / "keep.gguf"), (std::vector<uint8_t>{1, 2, 3}));
  // With force, both go ahead.
  FragmentOptions force;
  force.force = true;
  EXPECT_TRUE(FragmentModel(model_, dir_, force).ok());
  ASSERT_TRUE(Reassemble(dir_, tmp_ / "keep.gguf", true).ok());
  EXPECT_EQ(ReadBytes(tmp_ / "keep.gguf"), ReadBytes(model_));
}

TEST(Fragments, NonZeroPaddingIsKeptAsAGap) {
  TempDir tmp;
  gguf::GgufWriter w;
  w.Set("general.architecture", gguf::Value::String("llama"));
  w.AddTensor("a", GgmlType::F32, {3});  // 12 bytes, then 20 bytes of padding
  w.AddTensor("b", GgmlType::F32, {8});
  ASSERT_TRUE(w.Write(tmp / "g.gguf", false, [](size_t i, OutputFile& out) {
                 std::vector<uint8_t> v(i == 0 ? 12 : 32, static_cast<uint8_t>(i + 1));
                 return out.Write(v);
               }).ok());
  auto bytes = ReadBytes(tmp / "g.gguf");
  const size_t header = w.SerializeHeader().size();
  bytes[header + 12 + 5] = 0xEE;  // inside the padding after "a"
  WriteBytes(tmp / "g.gguf", bytes);
  auto r = FragmentModel(tmp / "g.gguf", tmp / "d", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int gaps = 0;
  for (const auto& e : r->manifest.fragments) gaps += e.kind == "gap";
  EXPECT_EQ(gaps, 1);
  ASSERT_TRUE(VerifyDirectory(tmp / "d")->ok());
  ASSERT_TRUE(Reassemble(tmp / "d", tmp / "back.gguf", false).ok());
  EXPECT_EQ(ReadBytes(tmp / "back.gguf"), bytes);
}

TEST(Fragments, IdenticalTensorsShareOneFile) {
  TempDir tmp;
  gguf::GgufWriter w;
  w.AddTensor("blk.0.attn_q.weight", GgmlType::F32, {32});
  w.AddTensor("blk.1.attn_q.weight", GgmlType::F32, {32});
  w.AddTensor("blk.2.attn_q.weight", GgmlType::F32, {32});
  ASSERT_TRUE(w.Write(tmp / "s.gguf", false, [](size_t i, OutputFile& out) {
                 std::vector<uint8_t> v(128, i == 2 ? 9 : 7);  // tensors 0 and 1 are equal
                 return out.Write(v);
               }).ok());
  auto r = FragmentModel(tmp / "s.gguf", tmp / "d", {});
  ASSERT_TRUE(r.ok());
  const auto& f = r->manifest.fragments;
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].id, f[1].id);  // same bytes, same identity
  EXPECT_NE(f[0].id, f[2].id);
  EXPECT_EQ(f[0].layer, 0);
  EXPECT_EQ(f[0].kind, "attention");
  EXPECT_EQ(f[0].component, "attn_q");
  ASSERT_TRUE(Reassemble(tmp / "d", tmp / "back.gguf", false).ok());
  EXPECT_EQ(ReadBytes(tmp / "back.gguf"), ReadBytes(tmp / "s.gguf"));
}

// A mixture-of-experts model: its 3-D expert tensors are cut between experts (whole experts
// per fragment, one even when an expert is larger than the chunk), the manifest names them,
// and the copy is byte-identical; a manifest whose experts are not its rows is refused.
TEST(Fragments, ExpertTensorsAreCutBetweenExperts) {
  TempDir tmp;
  ModelShape shape = *FindPreset("tiny");
  shape.head_dim = 128;
  shape.n_expert = 8;
  shape.n_expert_used = 2;
  shape.n_ff_exp = 256;
  SynthOptions o{shape, *ParseTypeMix("Q8_0"), 2, "moe", "qwen2", "qwen3moe"};
  ASSERT_TRUE(Synthesize(o, tmp / "m.gguf", false).ok());
  // An expert of gate/up is 256 rows of 272 bytes (69,632 bytes): 150 KiB holds two of them,
  // 16 KiB less than one.
  for (uint64_t chunk : {uint64_t{150} << 10, uint64_t{16} << 10}) {
    SCOPED_TRACE(chunk);
    const std::string dir = tmp / ("d" + std::to_string(chunk));
    FragmentOptions fo;
    fo.chunk_size = chunk;
    auto r = FragmentModel(tmp / "m.gguf", dir, fo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    int expert_fragments = 0;
    for (const FragmentEntry& f : r->manifest.fragments) {
      if (f.tensor.find("_exps.") == std::string::npos) {
        EXPECT_EQ(f.expert_end, 0u) << f.file;
        continue;
      }
      ++expert_fragments;
      const uint64_t per = f.shape[1];
      EXPECT_EQ(f.row_begin, f.expert_begin * per) << f.file;
      EXPECT_EQ(f.row_end, f.expert_end * per) << f.file;
      EXPECT_EQ(f.expert_end - f.expert_begin, chunk > (100u << 10) ? 2u : 1u) << f.file;
    }
    EXPECT_EQ(expert_fragments, 2 * 3 * (chunk > (100u << 10) ? 4 : 8));  // layers × tensors × …
    auto v = VerifyDirectory(dir);
    ASSERT_TRUE(v.ok() && v->ok());
    ASSERT_TRUE(Reassemble(dir, tmp / ("back" + std::to_string(chunk)), false).ok());
    EXPECT_EQ(ReadBytes(tmp / ("back" + std::to_string(chunk))), ReadBytes(tmp / "m.gguf"));
  }
  // An "experts" range that is not the fragment's rows.
  const std::string dir = tmp / ("d" + std::to_string(uint64_t{150} << 10));
  EditManifest(dir, [](nlohmann::json& j) {
    for (auto& f : j["fragments"])
      if (f.contains("experts")) {
        f["experts"][0] = f["experts"][0].get<uint64_t>() + 1;
        return;
      }
  });
  auto m = Manifest::Load(dir);
  auto h = m.ok() ? LoadHeader(dir, *m) : StatusOr<gguf::GgufFile>(m.status());
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("claims experts"), std::string::npos)
      << h.status().ToString();
}

TEST(Fragments, ReadsOneTensorBackFromItsFragments) {
  TempDir tmp;
  SynthOptions o{*FindPreset("tiny"), *ParseTypeMix("Q4_K"), 2, "t"};
  ASSERT_TRUE(Synthesize(o, tmp / "t.gguf", false).ok());
  FragmentOptions fo;
  fo.chunk_size = 8 << 10;
  ASSERT_TRUE(FragmentModel(tmp / "t.gguf", tmp / "d", fo).ok());
  auto src = FragmentSource::Open(tmp / "d");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto f = gguf::GgufFile::Open(tmp / "t.gguf");
  const auto* t = f->FindTensor("token_embd.weight");
  auto view = (*src)->Get("token_embd.weight");
  ASSERT_TRUE(view.ok());
  EXPECT_GT(view->shards.size(), 1u);  // cut into row-shards, one per fragment
  std::vector<uint8_t> bytes;
  for (uint64_t r = 0; r < view->rows(); ++r)
    bytes.insert(bytes.end(), view->Row(r), view->Row(r) + view->row_bytes);
  auto want = f->TensorBytes(*t);
  EXPECT_EQ(bytes, std::vector<uint8_t>(want.begin(), want.end()));
  EXPECT_FALSE((*src)->Get("nope").ok());
}

}  // namespace
}  // namespace ggswarm::fragments
