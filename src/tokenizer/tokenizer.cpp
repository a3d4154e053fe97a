#include "tokenizer/tokenizer.h"

#include <map>
#include <queue>

#include "tokenizer/unicode.h"

namespace ggswarm::tokenizer {
namespace {

// A piece of the input: raw text, or a special token found in it.
struct Fragment {
  TokenId token = kNoToken;  // kNoToken: raw text
  std::string_view text;
};

// Splits `text` at every special token, longest token text first (llama.cpp's
// tokenizer_st_partition). Control and unknown tokens count only with `parse_special`.
std::vector<Fragment> Partition(const Vocab& v, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags{{kNoToken, text}};
  for (TokenId id : v.specials) {
    if (!parse_special && (v.attr[id] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& s = v.text[id];
    std::vector<Fragment> next;
    bool changed = false;
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      size_t pos;
      while ((pos = rest.find(s)) != std::string_view::npos) {
        changed = true;
        if (pos > 0) next.push_back({kNoToken, rest.substr(0, pos)});
        next.push_back({id, {}});
        rest = rest.substr(pos + s.size());
      }
      if (!rest.empty()) next.push_back({kNoToken, rest});
    }
    if (changed) frags = std::move(next);
  }
  return frags;
}

// SentencePiece writes spaces as U+2581 "▁".
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

std::string EscapeSpaces(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ')
      out += kSpmSpace;
    else
      out += c;
  }
  return out;
}

std::string UnescapeSpaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.substr(i, 3) == kSpmSpace) {
      out += ' ';
      i += 3;
    } else {
      out += s[i++];
    }
  }
  return out;
}

struct Symbol {
  int prev, next;
  uint32_t offset, n;  // bytes of the text
};

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::make_shared<const Vocab>(std::move(vocab))) {}

Status CheckPreTokenizer(const Vocab& v);  // bpe.cpp

StatusOr<Tokenizer> Tokenizer::FromGguf(const gguf::GgufFile& f) {
  auto v = Vocab::FromGguf(f);
  if (!v.ok()) return v.status();
  GGSWARM_RETURN_IF_ERROR(CheckPreTokenizer(*v));
  return Tokenizer(std::move(*v));
}

std::vector<TokenId> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const Vocab& v = *vocab_;
  std::vector<TokenId> out;
  if (add_special && v.add_bos && v.bos != kNoToken) out.push_back(v.bos);
  const std::vector<Fragment> frags =
      text.empty() ? std::vector<Fragment>{} : Partition(v, text, parse_special);
  bool prev_special = true;  // SPM: a space before the text, and after each special token
  for (const Fragment& f : frags) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (v.kind == VocabKind::kSpm) {
      std::string t;
      if (v.add_space_prefix && prev_special) t = " ";
      t += f.text;
      EncodeSpm(EscapeSpaces(t), &out);
    } else {
      EncodeBpe(f.text, &out);
    }
    prev_special = false;
  }
  if (add_special && v.add_eos && v.eos != kNoToken) out.push_back(v.eos);
  return out;
}

// SentencePiece BPE by scores: start from single characters and repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring token (ties: leftmost); pieces
// that are not tokens are split back along their merges, and down to byte tokens.
void Tokenizer::EncodeSpm(std::string_view text, std::vector<TokenId>* out) const {
  const Vocab& v = *vocab_;
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const uint32_t n = static_cast<uint32_t>(
        std::min(Utf8Len(static_cast<uint8_t>(text[off])), text.size() - off));
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + n == text.size() ? -1 : idx + 1, static_cast<uint32_t>(off), n});
    off += n;
  }
  if (sym.empty()) return;

  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  std::map<std::string, std::pair<int, int>, std::less<>> rev_merge;
  auto str = [&](int i, size_t n) { return std::string(text.substr(sym[i].offset, n)); };
  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string s = str(left, sym[left].n + sym[right].n);
    const TokenId id = v.Find(s);
    if (id == kNoToken) return;
    queue.push({left, right, v.score[id], s.size()});
    rev_merge[s] = {left, right};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // Resegmentation, iterative: a stack of symbols still to emit, in order.
  for (int i = 0; i != -1; i = sym[i].next) {
    std::vector<int> stack{i};
    while (!stack.empty()) {
      const int s = stack.back();
      stack.pop_back();
      const std::string piece = str(s, sym[s].n);
      const TokenId id = v.Find(piece);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
      auto it = rev_merge.find(piece);
      if (it == rev_merge.end()) {
        for (char c : piece) {
          const TokenId b = v.ByteToken(static_cast<uint8_t>(c));
          if (b != kNoToken)
            out->push_back(b);
          else if (v.unk != kNoToken)
            out->push_back(v.unk);
        }
        continue;
      }
      stack.push_back(it->second.second);
      stack.push_back(it->second.first);
    }
  }
}

std::string Tokenizer::Piece(TokenId id, bool special) const {
  const Vocab& v = *vocab_;
  if (id < 0 || static_cast<size_t>(id) >= v.size()) return {};
  const uint8_t a = v.attr[id];
  const std::string& t = v.text[id];
  if (a & (kAttrControl | kAttrUnknown)) return special ? t : std::string();
  if (a & kAttrUserDefined) return t;
  if (v.kind == VocabKind::kSpm) {
    if (a & kAttrNormal) return UnescapeSpaces(t);
    if (a & kAttrByte) {
      // "<0xNN>"; a byte token with any other text (a damaged vocabulary) stands for nothing.
      auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
      };
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) >= 0 &&
          hex(t[4]) >= 0)
        return std::string(1, static_cast<char>(hex(t[3]) * 16 + hex(t[4])));
      return {};
    }
    return {};
  }
  if (a & kAttrNormal) {
    // Byte-level BPE: every character of the token stands for one byte.
    std::string out;
    CodePoints cps = DecodeUtf8(t);
    for (size_t i = 0; i < cps.cp.size(); ++i) {
      const int b = UnicodeToByte(cps.cp[i]);
      if (b >= 0)
        out += static_cast<char>(b);
      else
        out += t.substr(cps.offset[i], cps.offset[i + 1] - cps.offset[i]);
    }
    return out;
  }
  return {};
}

std::string Tokenizer::Decode(std::span<const TokenId> ids, bool remove_special,
                              bool unparse_special) const {
  const Vocab& v = *vocab_;
  bool remove_space = v.add_space_prefix;
  if (remove_special && v.add_bos && !ids.empty() && ids.front() == v.bos) {
    remove_space = false;
    ids = ids.subspan(1);
  }
  if (remove_special && v.add_eos && !ids.empty() && ids.back() == v.eos)
    ids = ids.subspan(0, ids.size() - 1);
  std::string out;
  for (TokenId id : ids) {
    std::string p = Piece(id, unparse_special);
    if (remove_space && !p.empty() && p[0] == ' ') p.erase(0, 1);
    remove_space = false;
    out += p;
  }
  return out;
}

std::string TextStream::Push(TokenId id) {
  pending_ += tok_.Piece(id, special_);
  const size_t n = CompleteUtf8Prefix(pending_);
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string TextStream::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace ggswarm::tokenizer
