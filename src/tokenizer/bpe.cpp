// Byte-level BPE (tokenizer.ggml.model = "gpt2"): the text is cut into words by the
// pre-tokenizer that `tokenizer.ggml.pre` names (each a regular expression in the original
// tokenizers; written out here as matchers that try the alternatives in order, with the
// same greedy-then-backtrack results), each word's bytes are mapped to printable
// characters, and the word is merged pair by pair, lowest merge rank first.
#include <queue>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace ggswarm::tokenizer {
namespace {

enum class Pre { kGpt2, kLlama3, kQwen2, kTekken, kGpt4o };

bool PreFromName(const std::string& name, Pre* p) {
  if (name == "gpt-2" || name == "gpt2")
    *p = Pre::kGpt2;
  else if (name == "llama3" || name == "llama-bpe" || name == "llama-v3")
    *p = Pre::kLlama3;
  else if (name == "qwen2" || name == "deepseek-r1-qwen")
    *p = Pre::kQwen2;
  else if (name == "tekken")
    *p = Pre::kTekken;
  else if (name == "gpt-4o" || name == "llama4")
    *p = Pre::kGpt4o;
  else
    return false;
  return true;
}

class Splitter {
 public:
  Splitter(const std::vector<uint32_t>& c, Pre pre) : c_(c), n_(c.size()), pre_(pre) {}

  // Length (in code points) of the match at `i`; always at least 1.
  size_t MatchAt(size_t i) const {
    size_t m = 0;
    switch (pre_) {
      case Pre::kGpt2:
        if ((m = Contraction(i, false)) || (m = SpaceThen(i, &Splitter::L)) ||
            (m = SpaceThen(i, &Splitter::N)) || (m = SpaceThen(i, &Splitter::Other)) ||
            (m = SpacesNotBeforeText(i)))
          return m;
        break;
      case Pre::kLlama3:
      case Pre::kQwen2:
        if ((m = Contraction(i, true)) || (m = PrefixedLetters(i)) || (m = Digits(i)) ||
            (m = Punctuation(i, false)) || (m = SpacesThenNewlines(i)) ||
            (m = SpacesNotBeforeText(i)) || (m = Run(i, &Splitter::S)))
          return m;
        break;
      case Pre::kTekken:
      case Pre::kGpt4o:
        if ((m = CasedWord(i, true)) || (m = CasedWord(i, false)) || (m = Digits(i)) ||
            (m = Punctuation(i, true)) || (m = SpacesThenNewlines(i)) ||
            (m = SpacesNotBeforeText(i)) || (m = Run(i, &Splitter::S)))
          return m;
        break;
    }
    return 1;
  }

 private:
  using Class = bool (Splitter::*)(size_t) const;
  bool In(size_t i) const { return i < n_; }
  bool L(size_t i) const { return In(i) && IsLetter(c_[i]); }
  bool N(size_t i) const { return In(i) && IsNumber(c_[i]); }
  bool S(size_t i) const { return In(i) && IsWhitespace(c_[i]); }
  bool Other(size_t i) const { return In(i) && !S(i) && !L(i) && !N(i); }
  bool NotNlLetterDigit(size_t i) const {
    return In(i) && c_[i] != '\r' && c_[i] != '\n' && !L(i) && !N(i);
  }
  bool Nl(size_t i) const { return In(i) && (c_[i] == '\r' || c_[i] == '\n'); }
  // The cased words' letter classes. The tokenizers' regular expressions say
  // A = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and B = [\p{Ll}\p{Lm}\p{Lo}\p{M}]; llama.cpp runs them
  // as (?=\p{L})[^a-z] and (?=\p{L})[^A-Z], so that outside ASCII every letter is in both and
  // a mark in neither. ggswarm splits as llama.cpp does: the token ids of its users' models.
  bool TA(size_t i) const { return L(i) && !(c_[i] >= 'a' && c_[i] <= 'z'); }
  bool TB(size_t i) const { return L(i) && !(c_[i] >= 'A' && c_[i] <= 'Z'); }

  size_t Run(size_t i, Class cls) const {
    size_t j = i;
    while ((this->*cls)(j)) ++j;
    return j - i;
  }
  // 's 't 're 've 'm 'll 'd
  size_t Contraction(size_t i, bool any_case) const {
    if (!In(i) || c_[i] != '\'' || !In(i + 1)) return 0;
    auto lower = [&](size_t k) { return In(k) ? (any_case ? ToLower(c_[k]) : c_[k]) : 0u; };
    const uint32_t a = lower(i + 1), b = lower(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }
  //  ?X+
  size_t SpaceThen(size_t i, Class cls) const {
    const size_t sp = In(i) && c_[i] == ' ' && (this->*cls)(i + 1) ? 1 : 0;
    const size_t r = Run(i + sp, cls);
    return r ? sp + r : 0;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  size_t PrefixedLetters(size_t i) const {
    if (NotNlLetterDigit(i) && L(i + 1)) return 1 + Run(i + 1, &Splitter::L);
    return Run(i, &Splitter::L);
  }
  // \p{N}{1,3} (llama3, gpt-4o) or \p{N} (qwen2, tekken)
  size_t Digits(size_t i) const {
    const size_t r = Run(i, &Splitter::N);
    return std::min(r, pre_ == Pre::kLlama3 || pre_ == Pre::kGpt4o ? size_t{3} : size_t{1});
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*   (tekken: [\r\n/]*)
  size_t Punctuation(size_t i, bool slash) const {
    const size_t sp = In(i) && c_[i] == ' ' && Other(i + 1) ? 1 : 0;
    const size_t r = Run(i + sp, &Splitter::Other);
    if (!r) return 0;
    size_t j = i + sp + r;
    while (Nl(j) || (slash && In(j) && c_[j] == '/')) ++j;
    return j - i;
  }
  // \s*[\r\n]+ : up to the last newline of the whitespace run
  size_t SpacesThenNewlines(size_t i) const {
    const size_t r = Run(i, &Splitter::S);
    for (size_t k = r; k > 0; --k)
      if (Nl(i + k - 1)) return k;
    return 0;
  }
  // \s+(?!\S) : a whitespace run, less its last character when text follows
  size_t SpacesNotBeforeText(size_t i) const {
    const size_t r = Run(i, &Splitter::S);
    if (r == 0) return 0;
    if (i + r == n_) return r;
    return r - 1;
  }
  // first:  [^\r\n\p{L}\p{N}]?A*B+C?     second: [^\r\n\p{L}\p{N}]?A+B*C?
  // C, gpt-4o's contractions ('s 't 're 've 'm 'll 'd in any case), is empty for tekken.
  size_t CasedWord(size_t i, bool first) const {
    for (size_t pre = NotNlLetterDigit(i) ? 1 : 0;; --pre) {
      const size_t s = i + pre;
      const size_t a = Run(s, &Splitter::TA);
      size_t word = 0;
      if (first) {
        // Greedy A*, then B+: give back A characters until B+ can start.
        for (size_t k = a + 1; k-- > 0;) {
          const size_t b = Run(s + k, &Splitter::TB);
          if (b) {
            word = pre + k + b;
            break;
          }
        }
      } else if (a) {
        word = pre + a + Run(s + a, &Splitter::TB);
      }
      if (word) return word + (pre_ == Pre::kGpt4o ? Contraction(i + word, true) : 0);
      if (pre == 0) return 0;
    }
  }

  const std::vector<uint32_t>& c_;
  size_t n_;
  Pre pre_;
};

struct Symbol {
  int prev, next;
  uint32_t offset, n;
};

}  // namespace

void Tokenizer::EncodeBpe(std::string_view text, std::vector<TokenId>* out) const {
  const Vocab& v = *vocab_;
  Pre pre = Pre::kLlama3;
  PreFromName(v.pre, &pre);  // checked when the tokenizer was made
  const bool ignore_merges = pre == Pre::kLlama3 || pre == Pre::kTekken;

  const CodePoints cps = DecodeUtf8(text);
  Splitter split(cps.cp, pre);
  for (size_t i = 0; i < cps.cp.size();) {
    const size_t m = split.MatchAt(i);
    const std::string_view raw = text.substr(cps.offset[i], cps.offset[i + m] - cps.offset[i]);
    i += m;
    std::string word;
    for (char c : raw) word += ByteToUnicode(static_cast<uint8_t>(c));

    if (ignore_merges) {
      const TokenId id = v.Find(word);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
    }
    std::vector<Symbol> sym;
    for (size_t off = 0; off < word.size();) {
      const uint32_t n = static_cast<uint32_t>(Utf8Len(static_cast<uint8_t>(word[off])));
      const int idx = static_cast<int>(sym.size());
      sym.push_back(
          {idx - 1, off + n >= word.size() ? -1 : idx + 1, static_cast<uint32_t>(off), n});
      off += n;
    }
    struct Bigram {
      int left, right, rank;
      std::string text;
    };
    auto worse = [](const Bigram& a, const Bigram& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    auto piece = [&](int k) { return word.substr(sym[k].offset, sym[k].n); };
    auto try_add = [&](int l, int r) {
      if (l == -1 || r == -1) return;
      const std::string a = piece(l), b = piece(r);
      auto it = v.merge_rank.find(a + " " + b);
      if (it == v.merge_rank.end()) return;
      queue.push({l, r, it->second, a + b});
    };
    for (int k = 1; k < static_cast<int>(sym.size()); ++k) try_add(k - 1, k);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || piece(b.left) + piece(b.right) != b.text) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int k = 0; k != -1 && !sym.empty(); k = sym[k].next) {
      const std::string p = piece(k);
      const TokenId id = v.Find(p);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
      for (char c : p) {  // llama.cpp: each byte alone, when it is a token
        const TokenId b = v.Find(std::string(1, c));
        if (b != kNoToken) out->push_back(b);
      }
    }
  }
}

Status CheckPreTokenizer(const Vocab& v) {
  Pre p;
  if (v.kind == VocabKind::kBpe && !PreFromName(v.pre, &p))
    return Status::Unsupported(
        "pre-tokenizer '" + v.pre +
        "' is not supported (gpt-2, llama3/llama-bpe, qwen2, tekken, gpt-4o)");
  return Status();
}

}  // namespace ggswarm::tokenizer
