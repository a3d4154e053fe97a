#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace ggswarm::runtime {

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

void Sampler::Accept(int32_t token) {
  recent_.push_back(token);
  while (static_cast<int>(recent_.size()) > std::max(0, o_.repeat_last_n)) recent_.pop_front();
}

int32_t Sampler::Sample(std::span<const float> logits) {
  const bool greedy = o_.temperature <= 0;
  const bool counted = o_.frequency_penalty != 0 || o_.presence_penalty != 0;
  if (greedy && !counted && o_.logit_bias.empty()) return Argmax(logits);
  cand_.clear();
  for (size_t i = 0; i < logits.size(); ++i) cand_.push_back({logits[i], static_cast<int32_t>(i)});
  for (const auto& [t, bias] : o_.logit_bias)
    if (t >= 0 && static_cast<size_t>(t) < cand_.size()) cand_[t].first += bias;
  if ((!greedy && o_.repeat_penalty != 1.0f) || counted) {
    // Each token of the window once, with its count.
    std::vector<int32_t> seen(recent_.begin(), recent_.end());
    std::sort(seen.begin(), seen.end());
    for (size_t i = 0; i < seen.size();) {
      size_t j = i;
      while (j < seen.size() && seen[j] == seen[i]) ++j;
      const int32_t t = seen[i];
      const auto count = static_cast<float>(j - i);
      i = j;
      if (t < 0 || static_cast<size_t>(t) >= cand_.size()) continue;
      float& l = cand_[t].first;
      if (!greedy && o_.repeat_penalty != 1.0f)
        l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
      l -= count * o_.frequency_penalty + o_.presence_penalty;
    }
  }
  if (greedy) {
    size_t best = 0;
    for (size_t i = 1; i < cand_.size(); ++i)
      if (cand_[i].first > cand_[best].first) best = i;
    return cand_[best].second;
  }
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = cand_.size();
  if (o_.top_k > 0 && static_cast<size_t>(o_.top_k) < keep) keep = o_.top_k;
  std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  cand_.resize(keep);
  // Probabilities of what is left (before temperature, as llama.cpp's chain does).
  auto probs = [&] {
    std::vector<double> p(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); ++i)
      sum += p[i] = std::exp(cand_[i].first - cand_[0].first);
    for (double& x : p) x /= sum;
    return p;
  };
  if (o_.top_p < 1.0f) {
    const std::vector<double> p = probs();
    double cum = 0;
    size_t n = cand_.size();
    for (size_t i = 0; i < p.size(); ++i) {
      cum += p[i];
      if (cum >= o_.top_p) {
        n = i + 1;
        break;
      }
    }
    cand_.resize(n);
  }
  if (o_.min_p > 0) {
    const float floor = cand_[0].first + std::log(o_.min_p);
    size_t n = 1;
    while (n < cand_.size() && cand_[n].first >= floor) ++n;
    cand_.resize(n);
  }
  std::vector<double> w(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i)
    w[i] = std::exp((cand_[i].first - cand_[0].first) / o_.temperature);
  std::discrete_distribution<size_t> dist(w.begin(), w.end());
  return cand_[dist(rng_)].second;
}

}  // namespace ggswarm::runtime
