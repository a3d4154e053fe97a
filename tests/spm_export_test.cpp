// `ggswarm tokenizer` writes a SentencePiece tokenizer.model: Debian's libsentencepiece
// (the reference implementation) loads it and encodes text to the same ids as ggswarm.
#include "tokenizer/spm_export.h"

#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace ggswarm::tokenizer {
namespace {

using testing::SharedDir;

TEST(SentencePieceExport, LibSentencePieceEncodesLikeGgswarm) {
  GGSWARM_REQUIRE_SHARED_MODELS();
  for (const char* m : {"llama-2-tiny-random", "stories260K-f32"}) {
    SCOPED_TRACE(m);
    auto f = gguf::GgufFile::Open(SharedDir() + "/models/" + m + ".gguf");
    ASSERT_TRUE(f.ok());
    auto tok = Tokenizer::FromGguf(*f);
    ASSERT_TRUE(tok.ok());
    auto proto = SentencePieceModel(tok->vocab());
    ASSERT_TRUE(proto.ok()) << proto.status().ToString();
    sentencepiece::SentencePieceProcessor sp;
    const auto st = sp.LoadFromSerializedProto(*proto);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(sp.GetPieceSize(), static_cast<int>(tok->vocab().size()));
    EXPECT_EQ(sp.bos_id(), tok->vocab().bos);
    EXPECT_EQ(sp.eos_id(), tok->vocab().eos);

    std::vector<std::string> texts = {"Hello world",          "Once upon a time, there was a dog.",
                                      "  two  spaces ",       "naïve café",
                                      "東京タワー",           "emoji 🦙 llama",
                                      "3.14159 and 12345678", "don't stop",
                                      "Hello\nworld\n\ttab",  "<s>not special</s>"};
    std::ifstream in(SharedDir() + "/golden/" + m + ".tokenize.json");
    if (in)
      for (const auto& e : nlohmann::json::parse(in)) texts.push_back(e["text"]);
    for (const std::string& t : texts) {
      if (t.empty()) continue;
      std::vector<int> ids;
      ASSERT_TRUE(sp.Encode(t, &ids).ok());
      const std::vector<int32_t> ours = tok->Encode(t, false, false);
      EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end()), ours) << "text: " << t;
      std::string back;
      ASSERT_TRUE(sp.Decode(ids, &back).ok());
      EXPECT_EQ(back, tok->Decode(ours)) << "text: " << t;
    }
  }
}

TEST(SentencePieceExport, RefusesByteLevelBpe) {
  Vocab v;
  v.kind = VocabKind::kBpe;
  v.model = "gpt2";
  v.text = {"a"};
  v.score = {0};
  v.attr = {kAttrNormal};
  auto r = SentencePieceModel(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not SentencePiece"), std::string::npos);
}

}  // namespace
}  // namespace ggswarm::tokenizer
