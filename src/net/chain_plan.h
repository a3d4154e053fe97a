// The choice a client makes when it builds a chain, apart from the calls that inform it
// (SwarmChain asks the stages; the swarm simulator, bench/swarm_sim.cpp, draws them): among
// the stages whose range starts at a position, the one asked for first (ChainOptions::
// prefer), then one running the kernels asked for (ChainOptions::prefer_kernels: a checker
// whose logits must then be the checked stage's bits), then one with free sessions, then the
// lowest round trip; from layer 0, each stage's end the next position, to the last layer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace ggswarm::net {

struct StageChoice {
  int first_layer = 0, end_layer = 0;
  bool preferred = false;
  bool sessions_free = true;
  double rtt_ms = 0;
  bool same_kernels = false;  // runs the kernels asked for
};

// How a sequence's batches (their sizes in tokens, in the order they were sent) are sent
// again — to a rebuilt chain after a failure, or to a checker (chain_verify.h) — so that
// every token gets the bits it got: each batch as it was, but consecutive single-token steps
// together, up to `exact_run` of them in one call (net::ExactRun: a run of that many gives
// each token the bits it gets alone). A batch longer than `max_batch` (what the chain's
// stages take now) is cut into pieces of that many, which may round differently. The number
// of tokens of each call, in order.
std::vector<int> ReplayCalls(const std::vector<int>& batch_sizes, int exact_run,
                             int max_batch = INT32_MAX);

// Whether stages serving `ranges` ([first, end) each) make a chain over layers [0, n_layer);
// ranges that are empty or reach past n_layer count for nothing.
bool CoversLayers(std::vector<std::pair<int, int>> ranges, int n_layer);

// The index in `cands` of the best stage, or -1 when `cands` is empty.
int BestStage(const std::vector<StageChoice>& cands);

// A chain over layers [0, n_layer): indices into `stages` (the live ones), in order. The
// first position no stage starts at is an error naming the layers missing there.
StatusOr<std::vector<size_t>> PlanChain(const std::vector<StageChoice>& stages, int n_layer);

}  // namespace ggswarm::net
