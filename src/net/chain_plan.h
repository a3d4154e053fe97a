// The choice a client makes when it builds a chain, apart from the calls that inform it
// (SwarmChain asks the stages; the swarm simulator, bench/swarm_sim.cpp, draws them): among
// the stages whose range starts at a position, the one asked for first (ChainOptions::
// prefer), then one with free sessions, then the lowest round trip; from layer 0, each
// stage's end the next position, to the last layer.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace ggswarm::net {

struct StageChoice {
  int first_layer = 0, end_layer = 0;
  bool preferred = false;
  bool sessions_free = true;
  double rtt_ms = 0;
};

// The index in `cands` of the best stage, or -1 when `cands` is empty.
int BestStage(const std::vector<StageChoice>& cands);

// A chain over layers [0, n_layer): indices into `stages` (the live ones), in order. The
// first position no stage starts at is an error naming the layers missing there.
StatusOr<std::vector<size_t>> PlanChain(const std::vector<StageChoice>& stages, int n_layer);

}  // namespace ggswarm::net
