// Text to token ids and back, as llama.cpp's llama_tokenize / llama_token_to_piece /
// llama_detokenize do it, for SentencePiece-style and byte-level BPE vocabularies.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"
#include "tokenizer/vocab.h"

namespace ggswarm::tokenizer {

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab);
  static StatusOr<Tokenizer> FromGguf(const gguf::GgufFile& f);

  const Vocab& vocab() const { return *vocab_; }

  // `add_special`: BOS/EOS as the vocabulary asks. `parse_special`: control tokens written
  // in the text ("<s>", "<|im_end|>") become those tokens (user-defined ones always do).
  std::vector<TokenId> Encode(std::string_view text, bool add_special = true,
                              bool parse_special = true) const;

  // The bytes a token stands for. Control tokens give "" unless `special`.
  std::string Piece(TokenId id, bool special = false) const;

  // The text of a token sequence (llama_detokenize): with `remove_special` a leading BOS
  // and trailing EOS are dropped; the first piece loses the space the encoder put there.
  std::string Decode(std::span<const TokenId> ids, bool remove_special = false,
                     bool unparse_special = false) const;

 private:
  void EncodeSpm(std::string_view text, std::vector<TokenId>* out) const;
  void EncodeBpe(std::string_view text, std::vector<TokenId>* out) const;

  std::shared_ptr<const Vocab> vocab_;
};

// Streams generated text: bytes are held back until they complete a UTF-8 character, so
// every chunk returned is valid UTF-8 even when a character spans several tokens.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tok, bool special = false) : tok_(tok), special_(special) {}
  std::string Push(TokenId id);
  std::string Flush();  // whatever is held back (an unfinished character at the end)

 private:
  const Tokenizer& tok_;
  bool special_;
  std::string pending_;
};

}  // namespace ggswarm::tokenizer
