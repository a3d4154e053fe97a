#include "runtime/bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels/kernels.h"
#include "runtime/engine.h"

namespace ggswarm::runtime {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Stats Summarize(std::vector<double> v) {
  Stats s;
  s.runs = v;
  for (double x : v) s.mean += x;
  s.mean /= std::max<size_t>(1, v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0;
  return s;
}

// The tensors one generated token reads from: every tensor but the token embedding (of which
// a token reads one row), unless the output head is the embedding itself (of experts, only
// the chosen: see Bandwidth).
std::vector<std::string> PerTokenTensors(Engine& e) {
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
  static StatusOr<Bandwidth> Over(Engine& e) {
    Bandwidth b(e);
    constexpr uint64_t kPiece = 1 << 20;
    for (const std::string& name : PerTokenTensors(e)) {
      auto v = e.source().Get(name);
      if (!v.ok()) return v.status();
      // Of a stack of experts, a token reads the ones it chooses: expert_used_count of
      // expert_count. The rate is measured over as many bytes of the stack (its first
      // experts), so that the probe reads what a token reads, no more: over the whole
      // stacks it read a model that need not fit in memory beside the engine's pages
      // (Qwen3-30B-A3B at Q4_K_M: 17.3 GB, of which 1.8 GB a token).
      const bool experts = v->info->shape.size() == 3 && e.config().moe;
      for (const TensorShard& s : v->shards) {
        const uint64_t all = (s.row_end - s.row_begin) * v->row_bytes;
        const uint64_t len = experts ? all * e.config().n_expert_used / e.config().n_expert : all;
        b.per_token_ += len;
        for (uint64_t at = 0; at < len; at += kPiece)
          b.pieces_.push_back({s.data + at, std::min(kPiece, len - at)});
      }
    }
    return b;
  }
  uint64_t per_token() const { return per_token_; }

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
      best = std::max(best, static_cast<double>(per_token_) / Seconds(t0, Clock::now()));
    }
    return best;
  }

 private:
  explicit Bandwidth(Engine& e) : e_(&e) {}
  struct Piece {
    const uint8_t* p;
    uint64_t n;
  };
  Engine* e_;
  std::vector<Piece> pieces_;
  uint64_t per_token_ = 0;  // what one token reads, and Measure
};

}  // namespace

StatusOr<BenchReport> Bench(const BenchOptions& o) {
  const std::string& path = o.path;
  const int n_prompt = o.n_prompt, n_gen = o.n_gen, threads = o.threads, reps = o.reps;
  if (n_prompt < 0 || n_gen < 0 || reps < 1 || (n_prompt == 0 && n_gen == 0))
    return Status::InvalidArgument("bench: need -p >= 0, -n >= 0 (not both 0) and -r >= 1");
  const auto t0 = Clock::now();
  EngineOptions eo;
  eo.threads = threads;
  eo.n_ctx = std::max(n_prompt, n_gen) + 1;
  eo.n_batch = std::max(1, n_prompt);
  auto e = Engine::Open(path, eo);
  if (!e.ok()) return e.status();
  GGSWARM_RETURN_IF_ERROR((*e)->Preload());
  const double load_s = Seconds(t0, Clock::now());
  Engine& eng = **e;
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
  if (!bw.ok()) return bw.status();
  const double token_bytes = static_cast<double>(bw->per_token());
  // This machine's bandwidth moves by 10% from one minute to the next: each generation run
  // is held against the bandwidth measured right after it (best of six passes).
  constexpr int kPasses = 6;
  Stats pp, tg, bound, fraction;
  if (n_prompt > 0) {
    std::vector<double> v;
    for (int r = 0; r <= reps; ++r) {  // run 0 is the warm-up
      auto x = pp_once();
      if (!x.ok()) return x.status();
      if (r > 0) v.push_back(*x);
    }
    pp = Summarize(v);
  }
  if (n_gen > 0) {
    auto w = tg_once(std::min(n_gen, 8));
    if (!w.ok()) return w.status();
    std::vector<double> v, b, f;
    for (int r = 0; r < reps; ++r) {
      auto x = tg_once(n_gen);
      if (!x.ok()) return x.status();
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
  BenchReport r;
  r.threads = eng.threads();
  r.isa = kernels::IsaName(kernels::Active());
  r.amx = kernels::AmxActive();
  r.load_s = load_s;
  r.checked_fragments = eng.source().path() != path;
  r.peak_rss_bytes = peak_rss;
  r.bytes_per_token = bw->per_token();
  r.read_bandwidth = bound.mean * token_bytes;
  r.pp = pp;
  r.tg = tg;
  r.bound = bound;
  r.fraction = fraction;
  return r;
}

}  // namespace ggswarm::runtime
