// Picking the next token from logits, as llama.cpp's default sampler chain does:
// logit bias → repetition, frequency and presence penalties → top-k → top-p → min-p →
// temperature → a draw from the distribution. temperature <= 0 is greedy: the argmax of the
// logits after the logit bias and the frequency and presence penalties (OpenAI's, which a
// client asks for by name; the repetition penalty, on by default, is left out there, as
// llama.cpp's greedy runs leave it).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace ggswarm::runtime {

struct SamplerOptions {
  float temperature = 0.8f;
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.1f;  // 1: off
  int repeat_last_n = 64;       // tokens the penalties look back over
  // OpenAI's: a token's logit less frequency × its count among the last repeat_last_n tokens,
  // less presence if it is there at all (llama.cpp's penalty_freq and penalty_present).
  float frequency_penalty = 0;
  float presence_penalty = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the token's logit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& o) : o_(o), rng_(o.seed) {}
  int32_t Sample(std::span<const float> logits);
  // Tokens the repetition penalty counts (prompt and generated).
  void Accept(int32_t token);

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t Argmax(std::span<const float> logits);

}  // namespace ggswarm::runtime
