#include "tokenizer/unicode.h"

#include <unicode/uchar.h>

#include <array>

namespace ggswarm::tokenizer {

std::string EncodeUtf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

CodePoints DecodeUtf8(std::string_view s) {
  CodePoints r;
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t lead = static_cast<uint8_t>(s[i]);
    size_t n = Utf8Len(lead);
    uint32_t cp = 0;
    bool ok = i + n <= s.size() && !(n == 1 && lead >= 0x80);
    if (ok) {
      cp = n == 1 ? lead : lead & (0x7F >> n);
      for (size_t k = 1; k < n; ++k) {
        const uint8_t c = static_cast<uint8_t>(s[i + k]);
        if ((c & 0xC0) != 0x80) {
          ok = false;
          break;
        }
        cp = (cp << 6) | (c & 0x3F);
      }
    }
    if (!ok) {
      n = 1;
      cp = 0x80000000u | lead;
    }
    r.cp.push_back(cp);
    r.offset.push_back(static_cast<uint32_t>(i));
    i += n;
  }
  r.offset.push_back(static_cast<uint32_t>(s.size()));
  return r;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    if (c >= 0xC0 && Utf8Len(c) > back) return n - back;
    return n;
  }
  return n;
}

std::string SanitizeUtf8(std::string_view s) {
  const CodePoints cps = DecodeUtf8(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.cp.size(); ++i) {
    const uint32_t cp = cps.cp[i];
    // Surrogates and overlong forms are invalid too.
    const size_t len = cps.offset[i + 1] - cps.offset[i];
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                          (len == 4 && (cp < 0x10000 || cp > 0x10FFFF));
    if ((cp & 0x80000000u) || overlong || (cp >= 0xD800 && cp <= 0xDFFF))
      out += "\xEF\xBF\xBD";
    else
      out += s.substr(cps.offset[i], len);
  }
  return out;
}

namespace {

struct ByteMap {
  std::array<std::string, 256> to_text;
  std::array<int, 512> from_cp;  // mapped code points are all below 512
  ByteMap() {
    from_cp.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const uint32_t cp = printable ? b : 256 + extra++;
      to_text[b] = EncodeUtf8(cp);
      from_cp[cp] = b;
    }
  }
};

const ByteMap& Map() {
  static const ByteMap m;
  return m;
}

bool Valid(uint32_t cp) { return cp < 0x110000; }

}  // namespace

const std::string& ByteToUnicode(uint8_t b) { return Map().to_text[b]; }

int UnicodeToByte(uint32_t cp) { return cp < 512 ? Map().from_cp[cp] : -1; }

bool IsLetter(uint32_t cp) { return Valid(cp) && u_isalpha(static_cast<UChar32>(cp)); }

bool IsNumber(uint32_t cp) {
  if (!Valid(cp)) return false;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool IsWhitespace(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return true;
  return Valid(cp) && cp >= 0x80 && u_isUWhiteSpace(static_cast<UChar32>(cp));
}

uint32_t ToLower(uint32_t cp) {
  return Valid(cp) ? static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp))) : cp;
}

}  // namespace ggswarm::tokenizer
