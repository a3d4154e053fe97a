// ggswarm bench: prompt processing and generation speed, in the manner of llama-bench, with
// load time, peak resident memory and generation as a fraction of the memory-bandwidth
// bound (measured here, over the model's own weights).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/text.h"
#include "commands.h"
#include "kernels/kernels.h"
#include "numeric_flags.h"
#include "runtime/engine.h"

namespace ggswarm::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Stats {
  double mean = 0, sd = 0;
  std::vector<double> runs;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  s.runs = v;
  for (double x : v) s.mean += x;
  s.mean /= std::max<size_t>(1, v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
  return s;
}

// The weights one generated token reads: every tensor but the token embedding (of which a
// token reads one row), unless the output head is the embedding itself.
std::vector<std::string> PerTokenTensors(runtime::Engine& e) {
  std::vector<std::string> names;
  for (const gguf::TensorInfo& t : e.source().header().tensors)
    if (t.name != "token_embd.weight" || e.config().tied_output) names.push_back(t.name);
  return names;
}

// Read bandwidth in bytes/s: the best of `passes` passes, on every thread, over the weights
// a token reads (already resident: they are the bytes generation streams), read with
// AVX-512 loads and software prefetch where the CPU has them (kernels::ReadAll), so that
// the bound is what this machine's memory gives, not what a simple loop gets from it.
class Bandwidth {
 public:
  static StatusOr<Bandwidth> Over(runtime::Engine& e) {
    Bandwidth b(e);
    constexpr uint64_t kPiece = 1 << 20;
    for (const std::string& name : PerTokenTensors(e)) {
      auto v = e.source().Get(name);
      if (!v.ok()) return v.status();
      for (const TensorShard& s : v->shards) {
        const uint64_t len = (s.row_end - s.row_begin) * v->row_bytes;
        b.bytes_ += len;
        for (uint64_t at = 0; at < len; at += kPiece)
          b.pieces_.push_back({s.data + at, std::min(kPiece, len - at)});
      }
    }
    return b;
  }
  uint64_t bytes() const { return bytes_; }

  // Passes alternate between one part per megabyte and four side by side; neither wins
  // everywhere (here, one does with a warm L2 prefetcher and both cores, four with one core
  // and a busy neighbour).
  double Measure(int passes) {
    std::vector<uint64_t> sink(e_->threads());
    double best = 0;
    for (int pass = 0; pass < passes; ++pass) {
      const int streams = pass % 2 ? 4 : 1;
      const auto t0 = Clock::now();
      e_->pool().Run(static_cast<int64_t>(pieces_.size()), [&](int64_t b, int64_t end, int tid) {
        for (int64_t i = b; i < end; ++i)
          sink[tid] ^= kernels::ReadAll(pieces_[i].p, pieces_[i].n, streams);
      });
      best = std::max(best, static_cast<double>(bytes_) / Seconds(t0, Clock::now()));
    }
    return best;
  }

 private:
  explicit Bandwidth(runtime::Engine& e) : e_(&e) {}
  struct Piece {
    const uint8_t* p;
    uint64_t n;
  };
  runtime::Engine* e_;
  std::vector<Piece> pieces_;
  uint64_t bytes_ = 0;
};

int RunBench(const std::string& path, int n_prompt, int n_gen, int threads, int reps, bool json) {
  if (n_prompt < 0 || n_gen < 0 || reps < 1 || (n_prompt == 0 && n_gen == 0))
    return Fail("bench: need -p >= 0, -n >= 0 (not both 0) and -r >= 1");
  const auto t0 = Clock::now();
  runtime::EngineOptions eo;
  eo.threads = threads;
  eo.n_ctx = std::max(n_prompt, n_gen) + 1;
  eo.n_batch = std::max(1, n_prompt);
  auto e = runtime::Engine::Open(path, eo);
  if (!e.ok()) return Fail(e.status().ToString());
  Status st = (*e)->Preload();
  if (!st.ok()) return Fail(st.ToString());
  const double load_s = Seconds(t0, Clock::now());
  runtime::Engine& eng = **e;
  const int n_vocab = eng.config().n_vocab;
  std::vector<float> logits;

  std::vector<int32_t> prompt(n_prompt);
  for (int i = 0; i < n_prompt; ++i) prompt[i] = static_cast<int32_t>((i * 7919L + 13) % n_vocab);
  auto pp_once = [&]() -> StatusOr<double> {
    eng.Truncate(0);
    const auto a = Clock::now();
    GGSWARM_RETURN_IF_ERROR(eng.Eval(prompt, &logits));
    return n_prompt / Seconds(a, Clock::now());
  };
  auto tg_once = [&](int n) -> StatusOr<double> {
    eng.Truncate(0);
    int32_t tok = 1 % n_vocab;
    const auto a = Clock::now();
    for (int i = 0; i < n; ++i) {
      GGSWARM_RETURN_IF_ERROR(eng.Eval({&tok, 1}, &logits));
      tok = static_cast<int32_t>((tok * 31L + 7) % n_vocab);
    }
    return n / Seconds(a, Clock::now());
  };

  auto bw = Bandwidth::Over(eng);
  if (!bw.ok()) return Fail(bw.status().ToString());
  const double token_bytes = static_cast<double>(bw->bytes());
  // This machine's bandwidth moves by 10% from one minute to the next: each generation run
  // is held against the bandwidth measured right after it (best of six passes).
  constexpr int kPasses = 6;
  Stats pp, tg, bound, fraction;
  if (n_prompt > 0) {
    std::vector<double> v;
    for (int r = 0; r <= reps; ++r) {  // run 0 is the warm-up
      auto x = pp_once();
      if (!x.ok()) return Fail(x.status().ToString());
      if (r > 0) v.push_back(*x);
    }
    pp = Summarize(v);
  }
  if (n_gen > 0) {
    auto w = tg_once(std::min(n_gen, 8));
    if (!w.ok()) return Fail(w.status().ToString());
    std::vector<double> v, b, f;
    for (int r = 0; r < reps; ++r) {
      auto x = tg_once(n_gen);
      if (!x.ok()) return Fail(x.status().ToString());
      v.push_back(*x);
      b.push_back(bw->Measure(kPasses) / token_bytes);
      f.push_back(v.back() / b.back());
    }
    tg = Summarize(v);
    bound = Summarize(b);
    fraction = Summarize(f);
  } else {
    bound = Summarize({bw->Measure(kPasses) / token_bytes});
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double peak_rss = static_cast<double>(ru.ru_maxrss) * 1024;
  const double read_bw = bound.mean * token_bytes;

  if (json) {
    nlohmann::json j = {{"model", path},
                        {"threads", eng.threads()},
                        {"isa", kernels::IsaName(kernels::Active())},
                        {"amx", kernels::AmxActive()},
                        {"load_s", load_s},
                        {"peak_rss_bytes", peak_rss},
                        {"bytes_per_token", bw->bytes()},
                        {"read_bandwidth_bytes_per_s", read_bw},
                        {"tg_bound_tokens_per_s", bound.mean}};
    if (n_prompt > 0)
      j["pp"] = {{"n", n_prompt}, {"mean", pp.mean}, {"sd", pp.sd}, {"runs", pp.runs}};
    if (n_gen > 0) {
      j["tg"] = {{"n", n_gen}, {"mean", tg.mean}, {"sd", tg.sd}, {"runs", tg.runs}};
      j["tg_bound_runs"] = bound.runs;  // tokens/s, each measured right after its run
      j["tg_fraction_of_bound"] = fraction.mean;
      j["tg_fraction_of_bound_sd"] = fraction.sd;
    }
    std::printf("%s\n", JsonText(j, 2).c_str());
    return 0;
  }
  std::printf("model        %s\n", path.c_str());
  std::printf("threads      %d\n", eng.threads());
  std::printf("kernels      %s%s\n", kernels::IsaName(kernels::Active()),
              kernels::AmxActive() ? " + AMX" : "");
  std::printf("load         %.3f s (open, map%s every weight)\n", load_s,
              eng.source().path() == path ? "" : " and check");
  std::printf("peak RSS     %.1f MiB\n", peak_rss / (1 << 20));
  std::printf("bandwidth    %.1f GB/s read (measured over the %.1f MB a token reads)\n",
              read_bw / 1e9, token_bytes / 1e6);
  if (n_prompt > 0) std::printf("pp%-9d  %.2f ± %.2f tokens/s\n", n_prompt, pp.mean, pp.sd);
  if (n_gen > 0)
    std::printf(
        "tg%-9d  %.2f ± %.2f tokens/s (%.1f ± %.1f%% of the bandwidth bound, %.2f tokens/s)\n",
        n_gen, tg.mean, tg.sd, 100 * fraction.mean, 100 * fraction.sd, bound.mean);
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int& rc) {
  static std::string path;
  static int p = 512, n = 128, t = 0, r = 3;
  static bool json = false;
  auto* b = app.add_subcommand("bench", "Measure prompt processing and generation speed");
  b->add_option("model", path, "GGUF file or fragment directory")->required();
  b->add_option("-p,--n-prompt", p, "Prompt tokens processed in one batch (default 512)")
      ->check(Within({"n_prompt", 0, runtime::kMaxContext}));
  b->add_option("-n,--n-gen", n, "Tokens generated one at a time (default 128)")
      ->check(Within({"n_gen", 0, runtime::kMaxContext}));
  b->add_option("-t,--threads", t, "Threads (default: one per core)")
      ->check(Within(runtime::kThreads));
  b->add_option("-r,--repetitions", r, "Repetitions after the warm-up (default 3)")
      ->check(Within({"repetitions", 1, 1000}));
  b->add_flag("--json", json, "Print the results as JSON");
  b->callback([&] { rc = RunBench(path, p, n, t, r, json); });
}

}  // namespace ggswarm::cli
