// Serving many requests: a Service takes completion requests (prompt tokens and how to
// sample), runs them and streams each one's tokens back. It decodes up to `parallel`
// sequences on one or more BatchEvaluators (lanes), one step for all of a lane's sequences
// at a time (continuous batching: a request joins as soon as a slot is free, and a long
// prompt goes in chunks beside the others' decoding). A local model is one lane; a swarm
// chain has several, so that its stages work on different lanes' steps at once. The
// OpenAI-compatible HTTP server (api/server.h) sits on this interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"
#include "runtime/evaluator.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace ggswarm::runtime {

struct ServiceOptions {
  int threads = 0;     // 0: one per core
  int n_ctx = 0;       // positions per sequence; 0: the model's, at most 4096
  int parallel = 4;    // sequences decoded together (slots)
  int max_queue = 64;  // requests that may wait for a slot; more are refused
  int n_batch = 512;   // a prompt goes in chunks of this many tokens
  int lanes = 0;       // swarm: groups of sequences stepped in turn; 0: one per stage
  // A finished sequence's cache stays in its slot, and a request whose prompt begins with
  // what a free slot holds goes there and skips that part (llama-server's cache_prompt).
  bool cache_prompt = true;
};

// What one request asks for.
struct Completion {
  std::vector<int32_t> prompt;
  GenerateOptions gen;
  int logprobs = -1;         // -1: none; 0-20: the chosen token's and this many most likely ones'
  bool cache_prompt = true;  // may reuse, and leave behind, a slot's cache (with the service's)
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

struct TokenEvent {
  int32_t token = -1;  // -1: text held back until the end (an unfinished character)
  std::string text;    // valid UTF-8, possibly empty
  float logprob = 0;
  std::vector<TokenLogprob> top;  // with Completion::logprobs > 0
};

struct Outcome {
  Status status;  // why it failed, if it did
  StopReason stop = StopReason::kMaxTokens;
  int prompt_tokens = 0, generated = 0;
  int cached_tokens = 0;  // of the prompt's, found in the slot's cache and not computed
  double queue_ms = 0, prompt_ms = 0, gen_ms = 0;  // waiting; to the first token; the rest
};

// Called on the service's own thread, in order; on_token returning false ends the request
// (StopReason::kCallback) and frees its slot at once. on_done comes exactly once.
struct Callbacks {
  std::function<bool(const TokenEvent&)> on_token;
  std::function<void(const Outcome&)> on_done;
};

// A submitted request: Cancel() ends it (within a step) without waiting.
class Ticket {
 public:
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct ServiceStats {
  int slots = 0, busy = 0, queued = 0;
  uint64_t requests = 0, refused = 0, prompt_tokens = 0, generated_tokens = 0;
  double tokens_per_second = 0;  // generated, over the last ten seconds
};

class Service {
 public:
  virtual ~Service() = default;
  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual const gguf::GgufFile& header() const = 0;
  virtual int n_ctx() const = 0;
  virtual int parallel() const = 0;
  // Queues a request. InvalidArgument when it cannot run (a prompt longer than the context,
  // an option out of range), Unavailable when the queue is full.
  virtual StatusOr<std::shared_ptr<Ticket>> Submit(Completion c, Callbacks cb) = 0;
  virtual ServiceStats Stats() const = 0;
};

// A local model (GGUF file or fragment directory), decoded in batches.
StatusOr<std::unique_ptr<Service>> OpenBatchService(const std::string& path,
                                                    const ServiceOptions& o);
// Requests onto the sequences of `lanes`, each lane stepping its sequences together on its
// own thread (o.parallel and o.threads are the lanes' own; o.n_batch cuts prompts).
StatusOr<std::unique_ptr<Service>> StartBatchService(
    std::vector<std::unique_ptr<BatchEvaluator>> lanes, const ServiceOptions& o);
// A local model's `o.parallel` sequences as one BatchEvaluator (o.threads, o.n_ctx).
StatusOr<std::unique_ptr<BatchEvaluator>> OpenLocalBatch(const std::string& path,
                                                         const ServiceOptions& o);

// One sequence's generation after its prompt: sampling, end conditions and text, the same
// steps as Generate takes, one token at a time.
class SequenceDecoder {
 public:
  SequenceDecoder(const tokenizer::Tokenizer& tok, const Completion& c);
  // With the logits after the last token fed and the sequence's positions used and
  // available: picks the next token into *ev (and *next, to feed) and returns true, or
  // returns false when the sequence has ended (stop()).
  bool Next(std::span<const float> logits, int n_past, int n_ctx, TokenEvent* ev, int32_t* next);
  // Whatever text is held back at the end, if any.
  bool Flush(TokenEvent* ev);
  StopReason stop() const { return stop_; }
  int generated() const { return generated_; }

 private:
  const tokenizer::Tokenizer& tok_;
  GenerateOptions gen_;
  int logprobs_;
  Sampler sampler_;
  tokenizer::TextStream stream_;
  int generated_ = 0;
  StopReason stop_ = StopReason::kMaxTokens;
};

// log softmax of `logits` at `token`, and the `top` most likely tokens' (top <= 20).
float Logprob(std::span<const float> logits, int32_t token, int top,
              std::vector<TokenLogprob>* out);

}  // namespace ggswarm::runtime
