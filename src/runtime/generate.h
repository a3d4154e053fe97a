// The generation loop: evaluate the prompt, then sample, stream and feed back one token at
// a time until end-of-generation, the token limit or the context limit.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/evaluator.h"
#include "runtime/sampler.h"

namespace ggswarm::runtime {

struct GenerateOptions {
  int max_tokens = 128;  // -1: until end-of-generation or a full context
  SamplerOptions sampling;
  bool ignore_eos = false;
};

enum class StopReason { kEndOfGeneration, kMaxTokens, kContextFull, kCallback };
const char* StopReasonName(StopReason r);

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;       // generated
  std::string text;                  // generated, as streamed
  std::vector<float> prompt_logits;  // logits of the last prompt position
  StopReason stop = StopReason::kMaxTokens;
  double prompt_ms = 0, gen_ms = 0;  // prompt evaluation; the rest of the loop
};

// Called with each new piece of text (valid UTF-8, possibly empty while a character is
// still incomplete) and its token; return false to stop. At the end, bytes still held back
// (an unfinished character) come once more with token -1.
using TokenCallback = std::function<bool(const std::string& text, int32_t token)>;

// InvalidArgument naming the first field outside its range (runtime/limits.h).
Status CheckGenerateOptions(const GenerateOptions& o);

// Generates after `prompt`, continuing from the engine's current position (its KV cache),
// so a conversation can go on where it stopped.
StatusOr<GenerateResult> Generate(Evaluator& engine, std::span<const int32_t> prompt,
                                  const GenerateOptions& opts, const TokenCallback& on_token = {});

}  // namespace ggswarm::runtime
