// base/: errors as values, output files that appear only when complete, byte sizes as users
// write them, SHA-256 against the standard's test vectors, and UTF-8 checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "base/file.h"
#include "base/sha256.h"
#include "base/status.h"
#include "base/text.h"
#include "base/units.h"
#include "test_util.h"

namespace ggswarm {
namespace {

namespace fs = std::filesystem;
using testing::ReadBytes;
using testing::TempDir;

TEST(Status, CarriesCodeMessageAndContext) {
  EXPECT_TRUE(Status().ok());
  const Status s = Status::NotFound("no such file: x").WithContext("model.gguf");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_EQ(s.message(), "model.gguf: no such file: x");
  EXPECT_NE(s.ToString().find("model.gguf: no such file: x"), std::string::npos);
  EXPECT_TRUE(Status::Ok().WithContext("ignored").ok());
  StatusOr<std::string> v = std::string("value");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "value");
  StatusOr<std::string> e = Status::Corruption("bad");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "bad");
}

TEST(OutputFile, AppearsOnlyWhenCommittedAndNeverReplacesWithoutOverwrite) {
  TempDir t;
  const std::string path = t / "out.bin";
  {
    auto f = OutputFile::Create(path, false);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Write({reinterpret_cast<const uint8_t*>("abc"), 3}).ok());
    EXPECT_FALSE(fs::exists(path));  // still under its temporary name
  }                                  // dropped without Commit: nothing left
  EXPECT_FALSE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(t.path())) ADD_FAILURE() << "left " << e.path();
  auto f = OutputFile::Create(path, false);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->Write({reinterpret_cast<const uint8_t*>("abc"), 3}).ok());
  ASSERT_TRUE(f->WriteZeros(2).ok());
  EXPECT_EQ(f->written(), 5u);
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(ReadBytes(path), (std::vector<uint8_t>{'a', 'b', 'c', 0, 0}));
  // Something at the path: refused, left as it was.
  auto again = OutputFile::Create(path, false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kExists);
  // A file that appears while writing is not replaced either.
  auto racing = OutputFile::Create(t / "late.bin", false);
  ASSERT_TRUE(racing.ok());
  testing::WriteBytes(t / "late.bin", {9});
  EXPECT_EQ(racing->Commit().code(), Status::Code::kExists);
  EXPECT_EQ(ReadBytes(t / "late.bin"), std::vector<uint8_t>{9});
  // With overwrite, the new bytes replace the old at once.
  auto over = OutputFile::Create(path, true);
  ASSERT_TRUE(over.ok());
  ASSERT_TRUE(over->Write({reinterpret_cast<const uint8_t*>("z"), 1}).ok());
  ASSERT_TRUE(over->Commit().ok());
  EXPECT_EQ(ReadBytes(path), std::vector<uint8_t>{'z'});
}

TEST(InputFile, ReadsRegularFilesOnlyAndNamesShortReads) {
  TempDir t;
  testing::WriteBytes(t / "f", {1, 2, 3});
  auto in = InputFile::Open(t / "f");
  ASSERT_TRUE(in.ok());
  std::vector<uint8_t> b(4);
  const Status s = in->ReadAt(0, b);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("file ends at byte 3, expected 4"), std::string::npos) << s.message();
  EXPECT_EQ(InputFile::Open(t / "absent").status().code(), Status::Code::kNotFound);
  const auto dir = InputFile::Open(t.path());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos);
}

TEST(ByteSize, WhatUsersWriteAndNothingElse) {
  EXPECT_EQ(ParseByteSize("4096"), 4096u);
  EXPECT_EQ(ParseByteSize("512K"), 512u << 10);
  EXPECT_EQ(ParseByteSize("10M"), 10u << 20);
  EXPECT_EQ(ParseByteSize("1G"), 1ull << 30);
  EXPECT_EQ(ParseByteSize("2MiB"), 2u << 20);
  EXPECT_EQ(ParseByteSize("7B"), 7u);
  for (const char* bad :
       {"", "-1", "1.5M", "10Q", "M", " 10M", "99999999999999999999", "99999999999G"})
    EXPECT_FALSE(ParseByteSize(bad).has_value()) << bad;
}

std::string HexOf(const std::string& s) {
  return ToHex(Sha256Of({reinterpret_cast<const uint8_t*>(s.data()), s.size()}));
}

// FIPS 180-2's examples (and the empty message).
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(HexOf(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexOf("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in uneven pieces.
  Sha256 h;
  const std::string a(1000, 'a');
  for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1) {
    step = std::min(step, 1000000 - done);
    h.Update({reinterpret_cast<const uint8_t*>(a.data()), step});
  }
  EXPECT_EQ(ToHex(h.Finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Utf8, WellFormedOnly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("héllo wörld \xF0\x9F\xA6\x99"));           // 2- and 4-byte characters
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));                              // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));                          // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));                      // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("ab\xE2\x82"));                            // cut short
  EXPECT_FALSE(IsValidUtf8("\x80"));                                  // a lone continuation byte
  EXPECT_EQ(JsonText(nlohmann::json("a\xFF")), "\"a\xEF\xBF\xBD\"");  // U+FFFD, no throw
}

}  // namespace
}  // namespace ggswarm
