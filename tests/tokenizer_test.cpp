// Tokenizer tests against llama.cpp's own tokenizations (../shared/golden/*.tokenize.json
// and tests/data/*.tokenize.json), plus streaming decode and the BPE pre-tokenizers.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "convert/synth.h"
#include "convert/type_plan.h"
#include "gguf/gguf_file.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace ggswarm::tokenizer {
namespace {

using testing::SharedDir;

nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

Tokenizer Load(const std::string& model) {
  // A helper cannot ASSERT; an exception fails the calling test instead.
  auto f = gguf::GgufFile::Open(model);
  if (!f.ok()) throw std::runtime_error(f.status().ToString());
  auto t = Tokenizer::FromGguf(*f);
  if (!t.ok()) throw std::runtime_error(t.status().ToString());
  return std::move(*t);
}

// Every string of a golden file: llama.cpp's ids (BOS as the model adds it) and its
// detokenization of the ids without BOS (special tokens rendered as text).
void CheckGolden(const std::string& model, const std::string& golden) {
  const Tokenizer tok = Load(model);
  const nlohmann::json g = LoadJson(golden);
  ASSERT_GT(g.size(), 5u);
  for (const auto& e : g) {
    const std::string text = e["text"];
    const std::vector<int32_t> want = e["tokens"];
    EXPECT_EQ(tok.Encode(text), want) << "text: " << text;
    std::vector<int32_t> body(want.begin() + (tok.vocab().add_bos ? 1 : 0), want.end());
    EXPECT_EQ(tok.Decode(body, false, true), e["detok"].get<std::string>()) << "text: " << text;
  }
}

TEST(TokenizerGolden, SharedModels) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  for (const char* m : {"llama-2-tiny-random", "stories260K-f32"}) {
    SCOPED_TRACE(m);
    CheckGolden(SharedDir() + "/models/" + m + ".gguf",
                SharedDir() + "/golden/" + m + ".tokenize.json");
  }
}

// Byte-level BPE: vocabularies ggswarm generates (merges learned from a fixed text), one
// per pre-tokenizer; and Gemma's kind of SentencePiece vocabulary: against llama.cpp's
// tokenizations made by tests/data/make_bpe_goldens.sh.
TEST(TokenizerGolden, GeneratedVocabulariesOfEveryFamily) {
  for (const char* pre : {"llama3", "qwen2", "tekken", "gpt-2", "gpt-4o", "gemma"}) {
    SCOPED_TRACE(pre);
    testing::TempDir dir;
    ModelShape shape = *FindPreset("micro");
    shape.n_vocab = 400;
    SynthOptions o{shape, *ParseTypeMix("Q8_0"), 1, "ggswarm-synth-micro", pre};
    ASSERT_TRUE(Synthesize(o, dir / "m.gguf", false).ok());
    CheckGolden(dir / "m.gguf", std::string(GGSWARM_SOURCE_DIR) + "/tests/data/bpe/micro-" + pre +
                                    ".tokenize.json");
  }
}

TEST(Tokenizer, SpecialTokensOnlyWhenParsed) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  const Tokenizer tok = Load(SharedDir() + "/models/llama-2-tiny-random.gguf");
  const auto parsed = tok.Encode("a</s>b", false, true);
  const auto plain = tok.Encode("a</s>b", false, false);
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), tok.vocab().eos), parsed.end());
  EXPECT_EQ(std::find(plain.begin(), plain.end(), tok.vocab().eos), plain.end());
  EXPECT_EQ(tok.Decode(plain), "a</s>b");
}

TEST(Tokenizer, StreamIsValidUtf8WhenCharactersSpanTokens) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  // In the 512-token TinyStories vocabulary, CJK and emoji fall back to byte tokens: one
  // character is three or four tokens.
  const Tokenizer tok = Load(SharedDir() + "/models/stories260K-f32.gguf");
  const std::string text = "東京 🦙 ok";
  const auto ids = tok.Encode(text, false);
  ASSERT_GT(ids.size(), 8u);
  TextStream stream(tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    EXPECT_EQ(SanitizeUtf8(piece), piece) << "a chunk is not valid UTF-8";
    out += piece;
  }
  out += stream.Flush();
  EXPECT_EQ(out, " " + text);  // generation keeps the encoder's leading space
}

TEST(Tokenizer, DamagedByteTokenTextDecodesToNothing) {
  // Byte tokens whose text is not "<0xNN>" (a damaged or hostile vocabulary) must not throw.
  Vocab v;
  v.text = {"<unk>", "<0xZZ>", "<0x4", "<0x41>", "abcdef"};
  v.score.assign(5, 0);
  v.attr = {kAttrUnknown, kAttrByte, kAttrByte, kAttrByte, kAttrByte};
  const Tokenizer tok(v);
  EXPECT_EQ(tok.Piece(1), "");
  EXPECT_EQ(tok.Piece(2), "");
  EXPECT_EQ(tok.Piece(3), "A");
  EXPECT_EQ(tok.Piece(4), "");
}

TEST(Unicode, CompletePrefixAndSanitize) {
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x9D"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE6\x9D\xB1"), 5u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\xA6"), 0u);
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(SanitizeUtf8("\xC0\x80"), "\xEF\xBF\xBD");  // overlong NUL
}

TEST(Unicode, Gpt2ByteMapIsABijection) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string& s = ByteToUnicode(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(s).second);
    const CodePoints cp = DecodeUtf8(s);
    ASSERT_EQ(cp.cp.size(), 1u);
    EXPECT_EQ(UnicodeToByte(cp.cp[0]), b);
  }
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(ByteToUnicode('A'), "A");
}

}  // namespace
}  // namespace ggswarm::tokenizer
