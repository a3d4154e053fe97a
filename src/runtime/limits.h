// The valid range of every number a user gives to generation — CLI flags and, with the
// same words, HTTP request fields and C++ options — in one table, so that every front end
// refuses the same values: NaN, a negative temperature, top_p 2, a repetition penalty of 0
// (which divides logits by zero), a negative thread count.
#pragma once

#include <string>

#include "model/config.h"

namespace ggswarm::runtime {

struct Limit {
  const char* name;  // as the HTTP API and GenerateOptions call it
  double min, max;
  bool min_exclusive = false;  // (min, max] instead of [min, max]
};

using model::kMaxContext;
constexpr Limit kTemperature{"temperature", 0, 100};
constexpr Limit kTopK{"top_k", 0, 1 << 30};                      // 0: off
constexpr Limit kTopP{"top_p", 0, 1};                            // 1: off
constexpr Limit kMinP{"min_p", 0, 1};                            // 0: off
constexpr Limit kRepeatPenalty{"repeat_penalty", 0, 100, true};  // 1: off
constexpr Limit kFrequencyPenalty{"frequency_penalty", -2, 2};   // 0: off (OpenAI's range)
constexpr Limit kPresencePenalty{"presence_penalty", -2, 2};     // 0: off
constexpr Limit kLogitBias{"logit_bias", -100, 100};             // per token
constexpr Limit kMaxTokens{"max_tokens", -1, kMaxContext};  // -1: until the end or a full context
constexpr Limit kContext{"n_ctx", 0, kMaxContext};          // 0: the model's, at most 4096
constexpr Limit kThreads{"threads", 0, 4096};               // 0: one per core

// "" when `v` is a number in the limit's range; else why not ("must be a number from 0 to
// 1, not 2"), for the caller to put after the option's name.
std::string OutOfLimit(const Limit& l, double v);

}  // namespace ggswarm::runtime
