#include "tokenizer/vocab.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace ggswarm::tokenizer {
namespace {

constexpr uint64_t kMaxVocab = 1u << 22;  // 4M tokens: far above any real vocabulary

// Token texts that end a turn in common chat formats; llama.cpp treats them as
// end-of-generation when the vocabulary marks them as control (or user-defined) tokens.
constexpr const char* kEogTexts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>",   "<end_of_turn>",
                                     "<|endoftext|>", "<EOT>",      "<|eom_id|>"};

TokenId ReadId(const gguf::GgufFile& f, const char* key, TokenId fallback, size_t n, Status* st) {
  auto v = f.GetInt(key);
  if (!v) return fallback;
  if (*v < 0 || static_cast<uint64_t>(*v) >= n) {
    // llama.cpp ignores ids outside the vocabulary; some converters write -1 for "none".
    if (*v != -1)
      *st = Status::Corruption(std::string(key) + " = " + std::to_string(*v) +
                               " is outside the vocabulary of " + std::to_string(n) + " tokens");
    return kNoToken;
  }
  return static_cast<TokenId>(*v);
}

bool ReadBool(const gguf::GgufFile& f, const char* key, bool fallback) {
  const gguf::Value* v = f.Find(key);
  if (!v) return fallback;
  auto i = v->AsInt();
  return i ? *i != 0 : fallback;
}

}  // namespace

bool Vocab::IsEog(TokenId id) const { return std::find(eog.begin(), eog.end(), id) != eog.end(); }

TokenId Vocab::ByteToken(uint8_t byte) const {
  if (kind == VocabKind::kSpm) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", byte);
    TokenId id = Find(buf);
    return id != kNoToken ? id : Find(std::string(1, static_cast<char>(byte)));
  }
  return Find(ByteToUnicode(byte));
}

StatusOr<Vocab> Vocab::FromGguf(const gguf::GgufFile& f) {
  Vocab v;
  auto model = f.GetString("tokenizer.ggml.model");
  if (!model) return Status::NotFound("the model has no tokenizer (tokenizer.ggml.model)");
  v.model = *model;
  if (v.model == "llama") {
    v.kind = VocabKind::kSpm;
  } else if (v.model == "gpt2") {
    v.kind = VocabKind::kBpe;
  } else {
    return Status::Unsupported("tokenizer.ggml.model '" + v.model +
                               "' is not supported (only 'llama' and 'gpt2')");
  }
  v.pre = f.GetString("tokenizer.ggml.pre").value_or("default");

  const gguf::Value* tokens = f.Find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != gguf::ValueType::ARRAY ||
      tokens->elem_type != gguf::ValueType::STRING)
    return Status::Corruption("tokenizer.ggml.tokens is missing or not an array of strings");
  if (tokens->count == 0 || tokens->count > kMaxVocab)
    return Status::Corruption("tokenizer.ggml.tokens has " + std::to_string(tokens->count) +
                              " tokens");
  const size_t n = tokens->count;
  for (auto s : tokens->Strings()) v.text.emplace_back(s);

  v.score.assign(n, 0.0f);
  if (const gguf::Value* s = f.Find("tokenizer.ggml.scores")) {
    if (s->type != gguf::ValueType::ARRAY || s->count != n)
      return Status::Corruption("tokenizer.ggml.scores does not have one score per token");
    auto items = s->Items();
    for (size_t i = 0; i < n; ++i) {
      auto x = items[i].AsFloat();
      if (!x) return Status::Corruption("tokenizer.ggml.scores holds a non-number");
      v.score[i] = static_cast<float>(*x);
    }
  }
  v.attr.assign(n, kAttrNormal);
  if (const gguf::Value* t = f.Find("tokenizer.ggml.token_type")) {
    if (t->type != gguf::ValueType::ARRAY || t->count != n)
      return Status::Corruption("tokenizer.ggml.token_type does not have one type per token");
    auto items = t->Items();
    for (size_t i = 0; i < n; ++i) {
      auto x = items[i].AsInt();
      if (!x || *x < 1 || *x > 6)
        return Status::Corruption("tokenizer.ggml.token_type[" + std::to_string(i) +
                                  "] is not a token type (1-6)");
      v.attr[i] = static_cast<uint8_t>(1u << (*x - 1));
    }
  }
  v.to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) v.to_id[v.text[i]] = static_cast<TokenId>(i);

  if (v.kind == VocabKind::kBpe) {
    const gguf::Value* merges = f.Find("tokenizer.ggml.merges");
    if (!merges || merges->type != gguf::ValueType::ARRAY ||
        merges->elem_type != gguf::ValueType::STRING)
      return Status::Corruption("a gpt2 tokenizer needs tokenizer.ggml.merges (strings)");
    int rank = 0;
    for (auto m : merges->Strings()) {
      if (m.find(' ', 1) == std::string_view::npos)
        return Status::Corruption("merge " + std::to_string(rank) + " '" + std::string(m) +
                                  "' is not two tokens separated by a space");
      v.merge_rank.emplace(std::string(m), rank++);
    }
  }

  // Defaults as llama.cpp sets them per tokenizer kind, then the file's own values.
  Status st;
  const bool spm = v.kind == VocabKind::kSpm;
  v.bos = ReadId(f, "tokenizer.ggml.bos_token_id", spm ? 1 : 11, n, &st);
  v.eos = ReadId(f, "tokenizer.ggml.eos_token_id", spm ? 2 : 11, n, &st);
  v.unk = ReadId(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : kNoToken, n, &st);
  v.pad = ReadId(f, "tokenizer.ggml.padding_token_id", kNoToken, n, &st);
  v.eot = ReadId(f, "tokenizer.ggml.eot_token_id", kNoToken, n, &st);
  const TokenId eom = ReadId(f, "tokenizer.ggml.eom_token_id", kNoToken, n, &st);
  if (!st.ok()) return st;
  if (static_cast<size_t>(v.bos) >= n) v.bos = kNoToken;
  if (static_cast<size_t>(v.eos) >= n) v.eos = kNoToken;
  const bool bpe_bos_default = v.pre == "llama3" || v.pre == "llama-bpe" || v.pre == "tekken";
  v.add_bos = ReadBool(f, "tokenizer.ggml.add_bos_token", spm || bpe_bos_default);
  v.add_eos = ReadBool(f, "tokenizer.ggml.add_eos_token", false);
  v.add_space_prefix = ReadBool(f, "tokenizer.ggml.add_space_prefix", spm);

  for (TokenId id : {v.eos, v.eot, eom})
    if (id != kNoToken && !v.IsEog(id)) v.eog.push_back(id);
  for (const char* t : kEogTexts) {
    TokenId id = v.Find(t);
    if (id != kNoToken && (v.attr[id] & (kAttrControl | kAttrUserDefined)) && !v.IsEog(id))
      v.eog.push_back(id);
  }

  for (size_t i = 0; i < n; ++i)
    if ((v.attr[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) && !v.text[i].empty())
      v.specials.push_back(static_cast<TokenId>(i));
  std::stable_sort(v.specials.begin(), v.specials.end(),
                   [&](TokenId a, TokenId b) { return v.text[a].size() > v.text[b].size(); });
  return v;
}

}  // namespace ggswarm::tokenizer
