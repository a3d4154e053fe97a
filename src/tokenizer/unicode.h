// The little Unicode the tokenizers need: UTF-8 lengths and code points, GPT-2's mapping of
// bytes to printable characters, and the character classes of the BPE pre-tokenizers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ggswarm::tokenizer {

// Bytes of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
inline size_t Utf8Len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

std::string EncodeUtf8(uint32_t cp);

// Decodes `s` into code points; an invalid byte becomes its own value | 0x80000000 so that
// it never matches a real character but keeps its place (and its byte) in the text.
struct CodePoints {
  std::vector<uint32_t> cp;
  std::vector<uint32_t> offset;  // byte offset of each code point in `s`, plus the end
};
CodePoints DecodeUtf8(std::string_view s);

// Length of the longest prefix of `s` that ends on a complete UTF-8 character.
size_t CompleteUtf8Prefix(std::string_view s);

// `s` with every byte that is not part of a valid UTF-8 character replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view s);

// GPT-2 byte-level BPE: every byte is shown as a printable character (UTF-8 encoded).
const std::string& ByteToUnicode(uint8_t b);
// The byte a mapped character stands for, or -1.
int UnicodeToByte(uint32_t cp);

// Character classes (Unicode general categories) for the pre-tokenizers.
bool IsLetter(uint32_t cp);
bool IsNumber(uint32_t cp);
bool IsWhitespace(uint32_t cp);  // \s as PCRE/std::regex see it, plus Unicode spaces
uint32_t ToLower(uint32_t cp);

}  // namespace ggswarm::tokenizer
