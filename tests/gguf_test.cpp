// The GGUF reader and writer: byte-exact round trips, and one corrupted file per check.
#include <gtest/gtest.h>

#include <cstring>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace ggswarm::gguf {
namespace {

using ggswarm::testing::ReadBytes;
using ggswarm::testing::SharedModels;
using ggswarm::testing::TempDir;

TEST(GgufRoundTrip, EverySharedModelIsRewrittenByteForByte) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  TempDir tmp;
  for (const std::string& path : SharedModels()) {
    SCOPED_TRACE(path);
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const std::string out = tmp / "copy.gguf";
    ASSERT_TRUE(WriteCopy(*f, out, true).ok());
    EXPECT_EQ(ReadBytes(out), ReadBytes(path));
  }
}

TEST(GgufReader, ReadsMetadataOfTheRealVocabularyModel) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  auto f = GgufFile::Open(ggswarm::testing::SharedDir() + "/models/llama-2-tiny-random.gguf");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->Architecture(), "llama");
  const Value* tokens = f->Find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->count, 32000u);
  auto strings = tokens->Strings();
  ASSERT_EQ(strings.size(), 32000u);
  EXPECT_EQ(strings[1], "<s>");
  EXPECT_EQ(strings[2], "</s>");
  EXPECT_EQ(f->GetInt("llama.embedding_length"), 8);
}

TEST(GgufWriter, WritesEveryValueTypeAndReadsItBack) {
  GgufWriter w;
  w.Set("u8", Value::Scalar(ValueType::UINT8, 200));
  w.Set("i8", Value::Scalar(ValueType::INT8, static_cast<uint8_t>(-5)));
  w.Set("u16", Value::Scalar(ValueType::UINT16, 60000));
  w.Set("i16", Value::Scalar(ValueType::INT16, static_cast<uint16_t>(-300)));
  w.Set("u32", Value::Uint32(4000000000u));
  w.Set("i32", Value::Int32(-7));
  w.Set("f32", Value::Float32(0.5f));
  w.Set("bool", Value::Bool(true));
  w.Set("str", Value::String("héllo"));
  w.Set("u64", Value::Uint64(1ull << 40));
  w.Set("i64", Value::Scalar(ValueType::INT64, static_cast<uint64_t>(-9)));
  w.Set("f64", Value::Scalar(ValueType::FLOAT64, 0x3ff8000000000000ull));  // 1.5
  w.Set("nested", Value::Array(ValueType::ARRAY,
                               {Value::Array(ValueType::INT32, {Value::Int32(1), Value::Int32(2)}),
                                Value::StringArray({"x", "yz"})}));
  w.AddTensor("t", GgmlType::F32, {4});
  TempDir tmp;
  ASSERT_TRUE(w.Write(tmp / "v.gguf", false, [](size_t, OutputFile& out) {
                 const float v[4] = {1, 2, 3, 4};
                 return out.Write({reinterpret_cast<const uint8_t*>(v), 16});
               }).ok());
  auto f = GgufFile::Open(tmp / "v.gguf");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->Find("u8")->u, 200u);
  EXPECT_EQ(f->Find("i8")->i, -5);
  EXPECT_EQ(f->Find("u16")->u, 60000u);
  EXPECT_EQ(f->Find("i16")->i, -300);
  EXPECT_EQ(f->Find("u32")->u, 4000000000u);
  EXPECT_EQ(f->Find("i32")->i, -7);
  EXPECT_EQ(f->Find("f32")->f, 0.5);
  EXPECT_EQ(f->Find("bool")->u, 1u);
  EXPECT_EQ(f->Find("str")->str, "héllo");
  EXPECT_EQ(f->Find("u64")->u, 1ull << 40);
  EXPECT_EQ(f->Find("i64")->i, -9);
  EXPECT_EQ(f->Find("f64")->f, 1.5);
  auto outer = f->Find("nested")->Items();
  ASSERT_EQ(outer.size(), 2u);
  auto inner = outer[0].Items();
  ASSERT_EQ(inner.size(), 2u);
  EXPECT_EQ(inner[1].i, 2);
  auto strs = outer[1].Strings();
  ASSERT_EQ(strs.size(), 2u);
  EXPECT_EQ(strs[1], "yz");
  float got[4];
  std::memcpy(got, f->TensorBytes(f->tensors[0]).data(), 16);
  EXPECT_EQ(got[3], 4.0f);
  // Refuses to replace the file it just wrote.
  EXPECT_EQ(w.Write(tmp / "v.gguf", false, [](size_t, OutputFile&) { return Status::Ok(); }).code(),
            Status::Code::kExists);
}

// A hand-assembled GGUF whose every field a test can falsify.
struct RawTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  uint64_t offset;
};

class RawFile {
 public:
  uint32_t magic = 0x46554747, version = 3;
  std::optional<uint64_t> n_tensors, n_kv;  // overrides of the true counts
  std::vector<std::string> kvs;             // encoded key/value pairs
  std::vector<RawTensor> tensors = {{"a", {32, 2}, 0, 0}, {"b", {32}, 8, 256}};
  uint64_t alignment = 32;
  uint64_t data_size = 512;

  static void U32(std::string* s, uint32_t v) { s->append(reinterpret_cast<char*>(&v), 4); }
  static void U64(std::string* s, uint64_t v) { s->append(reinterpret_cast<char*>(&v), 8); }
  static void Str(std::string* s, const std::string& v) {
    U64(s, v.size());
    *s += v;
  }
  static std::string KvU32(const std::string& key, uint32_t v) {
    std::string s;
    Str(&s, key);
    U32(&s, 4);
    U32(&s, v);
    return s;
  }
  static std::string KvStr(const std::string& key, const std::string& v) {
    std::string s;
    Str(&s, key);
    U32(&s, 8);
    Str(&s, v);
    return s;
  }

  std::vector<uint8_t> Build() const {
    std::string s;
    U32(&s, magic);
    U32(&s, version);
    U64(&s, n_tensors.value_or(tensors.size()));
    U64(&s, n_kv.value_or(kvs.size()));
    for (const std::string& kv : kvs) s += kv;
    for (const RawTensor& t : tensors) {
      Str(&s, t.name);
      U32(&s, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) U64(&s, d);
      U32(&s, t.type);
      U64(&s, t.offset);
    }
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    s.resize(s.size() + data_size, '\0');
    return {s.begin(), s.end()};
  }
};

std::string ParseError(const std::vector<uint8_t>& bytes) {
  auto f = GgufFile::Parse(bytes);
  return f.ok() ? "" : f.status().message();
}

TEST(GgufReaderChecks, TheUnmodifiedRawFileIsValid) {
  RawFile r;
  r.kvs = {RawFile::KvStr("general.architecture", "llama")};
  auto f = GgufFile::Parse(r.Build());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->tensors.size(), 2u);
  EXPECT_EQ(f->tensors[1].size, 34u);  // one Q8_0 block
}

TEST(GgufReaderChecks, TooShort) {
  EXPECT_NE(ParseError({'G', 'G', 'U'}).find("too short"), std::string::npos);
}

TEST(GgufReaderChecks, BadMagicNamesByteZero) {
  RawFile r;
  r.magic = 0x46554746;
  const std::string e = ParseError(r.Build());
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;
  EXPECT_NE(e.find("at byte 0"), std::string::npos) << e;
}

TEST(GgufReaderChecks, Versions) {
  RawFile r;
  r.version = 1;
  EXPECT_NE(ParseError(r.Build()).find("version 1 is not supported"), std::string::npos);
  r.version = 7;
  EXPECT_NE(ParseError(r.Build()).find("unsupported GGUF version 7"), std::string::npos);
  r.version = 2;
  EXPECT_EQ(ParseError(r.Build()), "");
}

TEST(GgufReaderChecks, CountsThatCannotFit) {
  RawFile r;
  r.n_tensors = 1ull << 60;
  EXPECT_NE(ParseError(r.Build()).find("tensor count"), std::string::npos);
  RawFile k;
  k.n_kv = 1ull << 40;
  EXPECT_NE(ParseError(k.Build()).find("metadata count"), std::string::npos);
}

TEST(GgufReaderChecks, LyingStringLength) {
  RawFile r;
  std::string kv;
  RawFile::Str(&kv, "key");
  RawFile::U32(&kv, 8);
  RawFile::U64(&kv, 1ull << 50);  // a string "longer" than the file
  r.kvs = {kv};
  const std::string e = ParseError(r.Build());
  EXPECT_NE(e.find("claims a length"), std::string::npos) << e;
}

TEST(GgufReaderChecks, UnknownValueType) {
  RawFile r;
  std::string kv;
  RawFile::Str(&kv, "key");
  RawFile::U32(&kv, 13);
  RawFile::U32(&kv, 0);
  r.kvs = {kv};
  EXPECT_NE(ParseError(r.Build()).find("unknown value type 13"), std::string::npos);
}

TEST(GgufReaderChecks, LyingArrayLength) {
  RawFile r;
  std::string kv;
  RawFile::Str(&kv, "key");
  RawFile::U32(&kv, 9);  // array
  RawFile::U32(&kv, 4);  // of u32
  RawFile::U64(&kv, 1ull << 61);
  r.kvs = {kv};
  const std::string e = ParseError(r.Build());
  EXPECT_NE(e.find("cannot fit"), std::string::npos) << e;
}

TEST(GgufReaderChecks, ArraysNestedTooDeep) {
  RawFile r;
  std::string kv;
  RawFile::Str(&kv, "key");
  RawFile::U32(&kv, 9);
  for (int d = 0; d < 20; ++d) {
    RawFile::U32(&kv, 9);  // elements are arrays
    RawFile::U64(&kv, 1);
  }
  RawFile::U32(&kv, 4);
  RawFile::U64(&kv, 0);
  r.kvs = {kv};
  EXPECT_NE(ParseError(r.Build()).find("nested deeper"), std::string::npos);
}

TEST(GgufReaderChecks, DuplicateKey) {
  RawFile r;
  r.kvs = {RawFile::KvU32("x", 1), RawFile::KvU32("x", 2)};
  EXPECT_NE(ParseError(r.Build()).find("duplicate metadata key \"x\""), std::string::npos);
}

TEST(GgufReaderChecks, BadBool) {
  RawFile r;
  std::string kv;
  RawFile::Str(&kv, "flag");
  RawFile::U32(&kv, 7);
  kv.push_back(2);
  r.kvs = {kv};
  EXPECT_NE(ParseError(r.Build()).find("bool value 2"), std::string::npos);
}

TEST(GgufReaderChecks, Alignment) {
  RawFile r;
  r.kvs = {RawFile::KvU32("general.alignment", 48)};
  EXPECT_NE(ParseError(r.Build()).find("not a power of two"), std::string::npos);
  RawFile s;
  s.kvs = {RawFile::KvStr("general.alignment", "32")};
  EXPECT_NE(ParseError(s.Build()).find("expected u32"), std::string::npos);
  RawFile ok;
  ok.kvs = {RawFile::KvU32("general.alignment", 64)};
  ok.alignment = 64;
  ok.tensors[1].offset = 256;
  auto f = GgufFile::Parse(ok.Build());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_offset % 64, 0u);
}

TEST(GgufReaderChecks, DuplicateTensorName) {
  RawFile r;
  r.tensors[1].name = "a";
  EXPECT_NE(ParseError(r.Build()).find("duplicate tensor name \"a\""), std::string::npos);
}

TEST(GgufReaderChecks, TensorNameTooLong) {
  RawFile r;
  r.tensors[0].name = std::string(64, 'n');
  EXPECT_NE(ParseError(r.Build()).find("longer than ggml's limit"), std::string::npos);
}

TEST(GgufReaderChecks, TooManyDimensions) {
  RawFile r;
  r.tensors[0].dims = {32, 1, 1, 1, 2};
  EXPECT_NE(ParseError(r.Build()).find("5 dimensions"), std::string::npos);
  r.tensors[0].dims = {};
  EXPECT_NE(ParseError(r.Build()).find("0 dimensions"), std::string::npos);
}

TEST(GgufReaderChecks, ZeroAndOverflowingDimensions) {
  RawFile r;
  r.tensors[0].dims = {32, 0};
  EXPECT_NE(ParseError(r.Build()).find("dimension 1 = 0"), std::string::npos);
  r.tensors[0].dims = {1ull << 32, 1ull << 32, 1ull << 32};
  EXPECT_NE(ParseError(r.Build()).find("too many elements"), std::string::npos);
}

TEST(GgufReaderChecks, UnknownType) {
  RawFile r;
  r.tensors[0].type = 4;  // removed from ggml long ago
  EXPECT_NE(ParseError(r.Build()).find("unknown ggml type 4"), std::string::npos);
}

// Bytes = elements × bytes per element: for 4- and 8-byte types the product of a shape that
// passes the element limit (2^62) can wrap around 2^64. Each such file is refused, naming
// the tensor, instead of being read as a tensor of 0 bytes (or of another tensor's bytes).
TEST(GgufReaderChecks, SizesThatWouldWrapAreRefused) {
  struct Case {
    std::vector<uint64_t> dims;
    uint32_t type;
  };
  for (const Case& c : {Case{{1ull << 31, 1ull << 31}, 0},  // F32: 2^62 × 4 = 2^64 → 0
                        Case{{4, 1ull << 60}, 0},           // F32: 2^62 × 4
                        Case{{1ull << 60}, 28},             // F64: 2^60 × 8 = 2^63
                        Case{{1ull << 61}, 27},             // I64: 2^61 × 8 = 2^64 → 0
                        Case{{1ull << 61}, 26}}) {          // I32: 2^61 × 4 = 2^63
    RawFile r;
    r.tensors[0].dims = c.dims;
    r.tensors[0].type = c.type;
    const std::string e = ParseError(r.Build());
    EXPECT_NE(e.find("tensor \"a\""), std::string::npos) << e;
    EXPECT_NE(e.find("more than 2^62 bytes"), std::string::npos) << e;
  }
  // The largest F32 shape below the limit still parses up to the size check against the file.
  RawFile ok;
  ok.tensors[0].dims = {1ull << 30, 1ull << 30};
  ok.tensors[0].type = 0;
  const std::string e = ParseError(ok.Build());
  EXPECT_NE(e.find("runs past the end of the file"), std::string::npos) << e;
  EXPECT_NE(e.find("4611686018427387904 bytes"), std::string::npos) << e;  // 2^62, not wrapped
}

TEST(GgufReaderChecks, KnownButUnsupportedTypeIsNamed) {
  RawFile r;
  r.tensors[0].type = 16;
  const std::string e = ParseError(r.Build());
  EXPECT_NE(e.find("ggml type 16 (IQ2_XXS), a type ggswarm does not support"), std::string::npos)
      << e;
}

TEST(GgufReaderChecks, RowsNotWholeBlocks) {
  RawFile r;
  r.tensors[1].dims = {48};  // Q8_0 blocks hold 32
  const std::string e = ParseError(r.Build());
  EXPECT_NE(e.find("not a whole number of Q8_0 blocks of 32"), std::string::npos) << e;
}

TEST(GgufReaderChecks, MisalignedOffset) {
  RawFile r;
  r.tensors[1].offset = 260;
  EXPECT_NE(ParseError(r.Build()).find("not a multiple of the alignment 32"), std::string::npos);
}

TEST(GgufReaderChecks, OverlappingOrOutOfOrder) {
  RawFile r;
  r.tensors[1].offset = 224;  // tensor "a" covers [0, 256)
  EXPECT_NE(ParseError(r.Build()).find("overlaps"), std::string::npos);
}

TEST(GgufReaderChecks, TensorPastTheEnd) {
  RawFile r;
  r.tensors[1].offset = 512;
  EXPECT_NE(ParseError(r.Build()).find("runs past the end of the file"), std::string::npos);
  r.tensors[1].offset = ~uint64_t{31};  // aligned, and would wrap around if added naively
  EXPECT_NE(ParseError(r.Build()).find("runs past the end of the file"), std::string::npos);
}

TEST(GgufReaderChecks, EveryTruncationIsAnErrorNotACrash) {
  RawFile r;
  r.kvs = {RawFile::KvStr("general.architecture", "llama"), RawFile::KvU32("x", 1)};
  const std::vector<uint8_t> full = r.Build();
  auto f = GgufFile::Parse(full);
  ASSERT_TRUE(f.ok());
  // Every prefix that loses a byte of the header or of a tensor; cutting only the trailing
  // bytes after the last tensor (tensor "b" ends at data offset 256 + 34) leaves a valid file.
  const size_t end = f->data_offset + 256 + 34;
  ASSERT_TRUE(GgufFile::Parse({full.data(), end}).ok());
  for (size_t n = 0; n < end; ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    EXPECT_NE(ParseError(cut), "") << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufReaderChecks, OpenNamesTheFile) {
  TempDir tmp;
  ggswarm::testing::WriteBytes(tmp / "junk.gguf", {'n', 'o', 'p', 'e', 0, 0, 0, 0, 0});
  auto f = GgufFile::Open(tmp / "junk.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("junk.gguf"), std::string::npos);
  auto missing = GgufFile::Open(tmp / "absent.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace ggswarm::gguf
