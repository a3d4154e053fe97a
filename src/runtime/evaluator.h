// What the generation loop needs from a model: feed tokens at the next positions and get
// the logits of the last one. A local Engine is one; a chain of remote stages is another.
#pragma once

#include <span>
#include <vector>

#include "base/status.h"
#include "tokenizer/tokenizer.h"

namespace ggswarm::runtime {

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual int n_ctx() const = 0;
  virtual int n_past() const = 0;
  // Feeds `tokens` at the next positions and leaves the logits of the last one in `logits`
  // (n_vocab floats).
  virtual Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits) = 0;
  // Forgets every position: the next Eval starts a new sequence.
  virtual void Reset() = 0;
};

}  // namespace ggswarm::runtime
