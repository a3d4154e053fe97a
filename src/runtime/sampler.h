// Picking the next token from logits, as llama.cpp's default sampler chain does:
// repetition penalty → top-k → top-p → min-p → temperature → a draw from the distribution.
// temperature <= 0 is greedy: the argmax of the raw logits, nothing else applied.
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
  int repeat_last_n = 64;       // tokens the penalty looks back over
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
