// ggswarm bench: prompt processing and generation speed, in the manner of llama-bench, with
// load time, peak resident memory and generation as a fraction of the memory-bandwidth
// bound (measured here, over the model's own weights).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/text.h"
#include "commands.h"
#include "numeric_flags.h"
#include "runtime/bench.h"

namespace ggswarm::cli {
namespace {

int RunBench(const std::string& path, int n_prompt, int n_gen, int threads, int reps, bool json) {
  auto report = runtime::Bench({path, n_prompt, n_gen, threads, reps});
  if (!report.ok()) return Fail(report.status().ToString());
  const runtime::BenchReport& r = *report;
  if (json) {
    nlohmann::json j = {{"model", path},
                        {"threads", r.threads},
                        {"isa", r.isa},
                        {"amx", r.amx},
                        {"load_s", r.load_s},
                        {"peak_rss_bytes", r.peak_rss_bytes},
                        {"bytes_per_token", r.bytes_per_token},
                        {"read_bandwidth_bytes_per_s", r.read_bandwidth},
                        {"tg_bound_tokens_per_s", r.bound.mean}};
    if (n_prompt > 0)
      j["pp"] = {{"n", n_prompt}, {"mean", r.pp.mean}, {"sd", r.pp.sd}, {"runs", r.pp.runs}};
    if (n_gen > 0) {
      j["tg"] = {{"n", n_gen}, {"mean", r.tg.mean}, {"sd", r.tg.sd}, {"runs", r.tg.runs}};
      j["tg_bound_runs"] = r.bound.runs;  // tokens/s, each measured right after its run
      j["tg_fraction_of_bound"] = r.fraction.mean;
      j["tg_fraction_of_bound_sd"] = r.fraction.sd;
    }
    std::printf("%s\n", JsonText(j, 2).c_str());
    return 0;
  }
  std::printf("model        %s\n", path.c_str());
  std::printf("threads      %d\n", r.threads);
  std::printf("kernels      %s%s\n", r.isa.c_str(), r.amx ? " + AMX" : "");
  std::printf("load         %.3f s (open, map%s every weight)\n", r.load_s,
              r.checked_fragments ? " and check" : "");
  std::printf("peak RSS     %.1f MiB\n", r.peak_rss_bytes / (1 << 20));
  std::printf("bandwidth    %.1f GB/s read (measured over the %.1f MB a token reads)\n",
              r.read_bandwidth / 1e9, r.bytes_per_token / 1e6);
  if (n_prompt > 0) std::printf("pp%-9d  %.2f ± %.2f tokens/s\n", n_prompt, r.pp.mean, r.pp.sd);
  if (n_gen > 0)
    std::printf(
        "tg%-9d  %.2f ± %.2f tokens/s (%.1f ± %.1f%% of the bandwidth bound, %.2f tokens/s)\n",
        n_gen, r.tg.mean, r.tg.sd, 100 * r.fraction.mean, 100 * r.fraction.sd, r.bound.mean);
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int& rc) {
  struct BenchArgs {
    std::string path;
    int p = 512, n = 128, t = 0, r = 3;
    bool json = false;
  };
  auto a = std::make_shared<BenchArgs>();  // lives as long as the callback that reads it
  auto* b = app.add_subcommand("bench", "Measure prompt processing and generation speed");
  b->add_option("model", a->path, "GGUF file or fragment directory")->required();
  b->add_option("-p,--n-prompt", a->p, "Prompt tokens processed in one batch (default 512)")
      ->check(Within({"n_prompt", 0, runtime::kMaxContext}));
  b->add_option("-n,--n-gen", a->n, "Tokens generated one at a time (default 128)")
      ->check(Within({"n_gen", 0, runtime::kMaxContext}));
  b->add_option("-t,--threads", a->t, "Threads (default: one per core)")
      ->check(Within(runtime::kThreads));
  b->add_option("-r,--repetitions", a->r, "Repetitions after the warm-up (default 3)")
      ->check(Within({"repetitions", 1, 1000}));
  b->add_flag("--json", a->json, "Print the results as JSON");
  b->callback([a, &rc] { rc = RunBench(a->path, a->p, a->n, a->t, a->r, a->json); });
}

}  // namespace ggswarm::cli
