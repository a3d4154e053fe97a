// A tokenizer vocabulary as GGUF metadata describes it (`tokenizer.ggml.*`): token texts,
// scores, types, the special ids and flags, and for byte-level BPE the merge ranks.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm::tokenizer {

using TokenId = int32_t;
constexpr TokenId kNoToken = -1;

// Token attributes, from `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control,
// 4 user-defined, 5 unused, 6 byte), as bit flags the way llama.cpp keeps them.
enum TokenAttr : uint8_t {
  kAttrNormal = 1,
  kAttrUnknown = 2,
  kAttrControl = 4,
  kAttrUserDefined = 8,
  kAttrUnused = 16,
  kAttrByte = 32,
};

enum class VocabKind {
  kSpm,  // "llama": SentencePiece-style, scores + byte fallback
  kBpe,  // "gpt2": byte-level BPE with merges and a pre-tokenizer
};

struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::string model;  // tokenizer.ggml.model
  std::string pre;    // tokenizer.ggml.pre ("default" when absent)
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint8_t> attr;
  std::unordered_map<std::string, TokenId> to_id;  // the last id wins, as in llama.cpp

  TokenId bos = kNoToken, eos = kNoToken, unk = kNoToken, pad = kNoToken, eot = kNoToken;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;  // SPM: a space before the text (and after a special token)
  std::vector<TokenId> eog;       // end-of-generation tokens
  // Special tokens matched in text (control, user-defined, unknown), longest text first.
  std::vector<TokenId> specials;
  // BPE: rank of the merge "left right" (lower merges first).
  std::unordered_map<std::string, int> merge_rank;

  static StatusOr<Vocab> FromGguf(const gguf::GgufFile& f);

  size_t size() const { return text.size(); }
  bool IsEog(TokenId id) const;
  TokenId Find(const std::string& s) const {
    auto it = to_id.find(s);
    return it == to_id.end() ? kNoToken : it->second;
  }
  // The byte-fallback token of `byte` (SPM "<0xNN>"; BPE the byte's mapped character).
  TokenId ByteToken(uint8_t byte) const;
};

}  // namespace ggswarm::tokenizer
