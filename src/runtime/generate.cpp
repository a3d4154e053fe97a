#include "runtime/generate.h"

#include <chrono>
#include <climits>

#include "runtime/limits.h"

namespace ggswarm::runtime {

const char* StopReasonName(StopReason r) {
  switch (r) {
    case StopReason::kEndOfGeneration:
      return "eog";
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kContextFull:
      return "context_full";
    case StopReason::kCallback:
      return "stopped";
  }
  return "?";
}

Status CheckGenerateOptions(const GenerateOptions& o) {
  const SamplerOptions& s = o.sampling;
  const std::pair<const Limit&, double> fields[] = {{kMaxTokens, o.max_tokens},
                                                    {kTemperature, s.temperature},
                                                    {kTopK, s.top_k},
                                                    {kTopP, s.top_p},
                                                    {kMinP, s.min_p},
                                                    {kRepeatPenalty, s.repeat_penalty},
                                                    {kFrequencyPenalty, s.frequency_penalty},
                                                    {kPresencePenalty, s.presence_penalty}};
  for (const auto& [limit, v] : fields) {
    if (std::string why = OutOfLimit(limit, v); !why.empty())
      return Status::InvalidArgument(std::string(limit.name) + " " + why);
  }
  for (const auto& [token, bias] : s.logit_bias)
    if (std::string why = OutOfLimit(kLogitBias, bias); !why.empty())
      return Status::InvalidArgument("logit_bias of token " + std::to_string(token) + " " + why);
  return Status::Ok();
}

StatusOr<GenerateResult> Generate(Evaluator& engine, std::span<const int32_t> prompt,
                                  const GenerateOptions& opts_in, const TokenCallback& on_token) {
  GGSWARM_RETURN_IF_ERROR(CheckGenerateOptions(opts_in));
  GenerateOptions opts = opts_in;
  if (opts.max_tokens < 0) opts.max_tokens = INT_MAX;  // until the end or a full context
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  GenerateResult r;
  r.prompt_tokens.assign(prompt.begin(), prompt.end());
  if (prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  if (engine.n_past() + static_cast<int>(prompt.size()) > engine.n_ctx())
    return Status::InvalidArgument(
        "the prompt (" + std::to_string(prompt.size()) + " tokens) does not fit the context of " +
        std::to_string(engine.n_ctx() - engine.n_past()) + " free positions (raise --ctx)");
  Sampler sampler(opts.sampling);
  for (int32_t t : prompt) sampler.Accept(t);
  const tokenizer::Vocab& vocab = engine.tokenizer().vocab();
  tokenizer::TextStream stream(engine.tokenizer());

  const auto t0 = Clock::now();
  std::vector<float> logits;
  GGSWARM_RETURN_IF_ERROR(engine.Eval(prompt, &logits));
  r.prompt_logits = logits;
  const auto t1 = Clock::now();
  r.prompt_ms = ms(t0, t1);

  while (static_cast<int>(r.tokens.size()) < opts.max_tokens) {
    const int32_t tok = sampler.Sample(logits);
    if (!opts.ignore_eos && vocab.IsEog(tok)) {
      r.stop = StopReason::kEndOfGeneration;
      break;
    }
    r.tokens.push_back(tok);
    sampler.Accept(tok);
    const std::string piece = stream.Push(tok);
    r.text += piece;
    if (on_token && !on_token(piece, tok)) {
      r.stop = StopReason::kCallback;
      break;
    }
    if (static_cast<int>(r.tokens.size()) >= opts.max_tokens) break;
    if (engine.n_past() >= engine.n_ctx()) {
      r.stop = StopReason::kContextFull;
      break;
    }
    GGSWARM_RETURN_IF_ERROR(engine.Eval(std::span<const int32_t>(&tok, 1), &logits));
  }
  const std::string rest = stream.Flush();
  if (!rest.empty()) {
    r.text += rest;
    if (on_token) on_token(rest, -1);
  }
  r.gen_ms = ms(t1, Clock::now());
  return r;
}

}  // namespace ggswarm::runtime
