// What the generation loop needs from a model: feed tokens at the next positions and get
// the logits of the last one. A local Engine is one; a chain of remote stages is another.
#pragma once

#include <span>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"
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

// Consecutive tokens of one sequence in a step of several.
struct SeqTokens {
  int seq = 0;
  std::span<const int32_t> tokens;
  bool logits = false;  // wants the logits of its last token
};

// Several sequences at once — a local model's batch, or a swarm chain's micro-batch: one
// step feeds each item's tokens at its sequence's next positions. A sequence's results do
// not depend on the others in the step (the batched kernels give each row the bits it gets
// alone). runtime::Service schedules requests onto one or more of these.
class BatchEvaluator {
 public:
  virtual ~BatchEvaluator() = default;
  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual const gguf::GgufFile& header() const = 0;
  virtual int n_seq() const = 0;
  virtual int n_ctx() const = 0;  // positions per sequence
  virtual int n_past(int seq) const = 0;
  // Each sequence at most once; the logits of the last token of every item that wants them,
  // n_vocab floats each, one after another in the items' order.
  virtual Status Step(std::span<const SeqTokens> items, std::vector<float>* logits) = 0;
  // Forgets sequence `seq`'s positions: its next step starts a new sequence.
  virtual void Reset(int seq) = 0;
  // Keeps the first n of sequence `seq`'s positions and forgets the rest, so that its next
  // step goes on from position n; false (and nothing changed) where the evaluator cannot.
  virtual bool Truncate(int seq, int n) {
    if (n != 0) return false;
    Reset(seq);
    return true;
  }
};

}  // namespace ggswarm::runtime
