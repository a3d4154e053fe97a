// Writes a SentencePiece-style vocabulary as a SentencePiece `tokenizer.model`: the
// ModelProto protobuf of sentencepiece_model.proto, encoded by hand (the few fields below).
//
//   ModelProto      1: pieces (repeated SentencePiece)  2: trainer_spec  3: normalizer_spec
//   SentencePiece   1: piece (string)  2: score (float)  3: type (enum, GGUF's numbering:
//                   1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)
//   TrainerSpec     3: model_type (2 = BPE)  4: vocab_size  35: byte_fallback
//                   40: unk_id  41: bos_id  42: eos_id  43: pad_id
//   NormalizerSpec  1: name ("identity")  3: add_dummy_prefix  4: remove_extra_whitespaces
//                   5: escape_whitespaces
#pragma once

#include <string>

#include "base/status.h"
#include "tokenizer/vocab.h"

namespace ggswarm::tokenizer {

// The serialized ModelProto; an error for a vocabulary that is not SentencePiece-style.
StatusOr<std::string> SentencePieceModel(const Vocab& v);

}  // namespace ggswarm::tokenizer
