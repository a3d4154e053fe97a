#include "net/chain_plan.h"

#include <algorithm>

namespace ggswarm::net {

std::vector<int> ReplayCalls(const std::vector<int>& batch_sizes, int exact_run, int max_batch) {
  const int run = std::min(exact_run, max_batch);
  std::vector<int> calls;
  for (size_t b = 0; b < batch_sizes.size();) {
    int n = batch_sizes[b++];
    if (n == 1)
      while (b < batch_sizes.size() && batch_sizes[b] == 1 && n < run) {
        ++n;
        ++b;
      }
    for (; n > max_batch; n -= max_batch) calls.push_back(max_batch);
    calls.push_back(n);
  }
  return calls;
}

bool CoversLayers(std::vector<std::pair<int, int>> ranges, int n_layer) {
  if (n_layer <= 0) return false;
  std::sort(ranges.begin(), ranges.end());
  std::vector<char> reach(static_cast<size_t>(n_layer) + 1, 0);
  reach[0] = 1;
  for (const auto& [first, end] : ranges)
    if (first >= 0 && first < end && end <= n_layer && reach[static_cast<size_t>(first)])
      reach[static_cast<size_t>(end)] = 1;
  return reach[static_cast<size_t>(n_layer)] != 0;
}

int BestStage(const std::vector<StageChoice>& cands) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(cands.size()); ++i) {
    if (best < 0) {
      best = i;
      continue;
    }
    const StageChoice& a = cands[static_cast<size_t>(i)];
    const StageChoice& b = cands[static_cast<size_t>(best)];
    if (a.preferred != b.preferred) {
      if (a.preferred) best = i;
    } else if (a.same_kernels != b.same_kernels) {
      if (a.same_kernels) best = i;
    } else if (a.sessions_free != b.sessions_free) {
      if (a.sessions_free) best = i;
    } else if (a.rtt_ms < b.rtt_ms) {
      best = i;
    }
  }
  return best;
}

StatusOr<std::vector<size_t>> PlanChain(const std::vector<StageChoice>& stages, int n_layer) {
  std::vector<size_t> chain;
  for (int pos = 0; pos < n_layer;) {
    std::vector<StageChoice> here;
    std::vector<size_t> index;
    int upto = n_layer;
    for (size_t i = 0; i < stages.size(); ++i) {
      const StageChoice& s = stages[i];
      if (s.end_layer <= s.first_layer || s.end_layer > n_layer) continue;
      if (s.first_layer == pos) {
        here.push_back(s);
        index.push_back(i);
      } else if (s.first_layer > pos) {
        upto = std::min(upto, s.first_layer);
      }
    }
    const int best = BestStage(here);
    if (best < 0)
      return Status::NotFound("no live peer serves layers " + std::to_string(pos) + "-" +
                              std::to_string(upto - 1));
    chain.push_back(index[static_cast<size_t>(best)]);
    pos = here[static_cast<size_t>(best)].end_layer;
  }
  return chain;
}

}  // namespace ggswarm::net
