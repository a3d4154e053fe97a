#include "tokenizer/spm_export.h"

#include <cstring>

namespace ggswarm::tokenizer {
namespace {

enum Wire { kVarint = 0, kFixed32 = 5, kBytes = 2 };

void Varint(std::string* o, uint64_t v) {
  while (v >= 0x80) {
    o->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  o->push_back(static_cast<char>(v));
}
void Tag(std::string* o, int field, Wire w) { Varint(o, static_cast<uint64_t>(field) << 3 | w); }
void Int(std::string* o, int field, int64_t v) {
  Tag(o, field, kVarint);
  Varint(o, static_cast<uint64_t>(v));  // negative int32: ten bytes, as protobuf does
}
void Bytes(std::string* o, int field, const std::string& s) {
  Tag(o, field, kBytes);
  Varint(o, s.size());
  *o += s;
}
void Float(std::string* o, int field, float f) {
  Tag(o, field, kFixed32);
  char b[4];
  std::memcpy(b, &f, 4);  // little-endian, as this machine
  o->append(b, 4);
}

int GgufType(uint8_t attr) {
  for (int t = 1; t <= 6; ++t)
    if (attr == (1u << (t - 1))) return t;
  return 1;
}

}  // namespace

StatusOr<std::string> SentencePieceModel(const Vocab& v) {
  if (v.kind != VocabKind::kSpm)
    return Status::Unsupported("the vocabulary is byte-level BPE ('" + v.model +
                               "'), not SentencePiece; it has no tokenizer.model form");
  if (v.unk == kNoToken || !(v.attr[v.unk] & kAttrUnknown))
    return Status::Unsupported("SentencePiece needs an unknown token; this vocabulary has none");
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p;
    Bytes(&p, 1, v.text[i]);
    Float(&p, 2, v.score[i]);
    Int(&p, 3, GgufType(v.attr[i]));
    Bytes(&out, 1, p);
  }
  bool bytes = false;
  for (uint8_t a : v.attr) bytes |= (a & kAttrByte) != 0;
  std::string trainer;
  Int(&trainer, 3, 2);  // BPE
  Int(&trainer, 4, static_cast<int64_t>(v.size()));
  Int(&trainer, 35, bytes ? 1 : 0);
  Int(&trainer, 40, v.unk);
  Int(&trainer, 41, v.bos);
  Int(&trainer, 42, v.eos);
  Int(&trainer, 43, v.pad);
  Bytes(&out, 2, trainer);
  std::string norm;
  Bytes(&norm, 1, "identity");
  Int(&norm, 3, v.add_space_prefix ? 1 : 0);
  Int(&norm, 4, 0);
  Int(&norm, 5, 1);
  Bytes(&out, 3, norm);
  return out;
}

}  // namespace ggswarm::tokenizer
