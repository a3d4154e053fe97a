// The measurement behind `ggswarm bench`, in the manner of llama-bench: prompt processing
// of n_prompt tokens in one batch (pp) and generation of n_gen tokens one at a time (tg), as
// mean ± standard deviation over `reps` runs after a warm-up; with load time, peak resident
// memory, and generation as a fraction of the memory-bandwidth bound, measured over the
// model's own weights right after each run (this machine's bandwidth moves minute to minute).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace ggswarm::runtime {

struct BenchOptions {
  std::string path;  // GGUF file or fragment directory
  int n_prompt = 512, n_gen = 128, threads = 0, reps = 3;
};

struct Stats {
  double mean = 0, sd = 0;
  std::vector<double> runs;
};

struct BenchReport {
  int threads = 0;
  std::string isa;  // kernels in use
  bool amx = false;
  double load_s = 0;               // open and map every weight (from fragments: and check)
  bool checked_fragments = false;  // the model came from fragments, each SHA-256 checked
  double peak_rss_bytes = 0;
  uint64_t bytes_per_token = 0;  // weights one generated token reads
  double read_bandwidth = 0;     // bytes/s, over those weights
  Stats pp, tg;                  // tokens/s
  Stats bound;                   // tg's bandwidth bound, tokens/s, measured after each run
  Stats fraction;                // tg ÷ its bound, run by run
};

StatusOr<BenchReport> Bench(const BenchOptions& o);

}  // namespace ggswarm::runtime
