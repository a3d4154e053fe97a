// Throughput of the generation kernels (row dots) for each type that has one, in GB/s of
// weights read: "hot" over rows that stay in L2 (the arithmetic alone) and "stream" over a
// buffer far larger than the caches (what generation does), against kernels::ReadAll over
// the same buffer (the best a plain read gets). Rows of k = 2048 random quantized weights;
// with two threads each takes half of the rows, in calls of 704 rows (811 KB of Q4_0: the
// engine cuts its chunks into calls of at most 768 KB) or as many as the third argument
// says (longer calls' four parts lie further apart, and stream worse).
// The fourth argument sets k (768: the down projection of a Qwen3-30B-A3B expert).
//   bench_rowdots [megabytes=1024] [threads=1|2] [rows per call=704] [k=2048]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "kernels/kernels.h"
#include "quant/quantize.h"
#include "quant/vec_dot.h"

using namespace ggswarm;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// fn(begin, end) over [0, n), on one thread or split in two halves.
template <typename F>
void Split(int threads, int64_t n, const F& fn) {
  if (threads == 1) return fn(int64_t{0}, n);
  std::thread other([&] { fn(n / 2, n); });
  fn(int64_t{0}, n / 2);
  other.join();
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t big = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024) << 20;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int64_t call = argc > 3 ? std::atoll(argv[3]) : 704;
  if (big == 0 || (threads != 1 && threads != 2) || call < 1) {
    std::fprintf(stderr,
                 "usage: bench_rowdots [megabytes > 0] [threads 1 or 2] [rows per call > 0]\n");
    return 2;
  }
  if (!kernels::HasRowDot(GgmlType::Q8_0)) {
    std::fprintf(stderr, "bench_rowdots: this CPU has no AVX-512 VNNI row dots\n");
    return 1;
  }
  const int64_t k = argc > 4 ? std::atoll(argv[4]) : 2048;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(k);
  for (float& v : x) v = dist(rng);
  std::vector<uint8_t> buf(big);
  std::memset(buf.data(), 1, big);  // resident before anything is timed

  double read = 1e30;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep)
    for (int streams : {1, 4}) {
      const double t0 = Now();
      Split(threads, static_cast<int64_t>(big >> 20), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          sink = sink ^ kernels::ReadAll(buf.data() + (i << 20), 1 << 20, streams);
      });
      read = std::min(read, Now() - t0);
    }
  std::printf("row dots, k = %lld, %d thread(s), %llu MB, %lld rows per call; ReadAll %.1f GB/s\n",
              static_cast<long long>(k), threads, static_cast<unsigned long long>(big >> 20),
              static_cast<long long>(call), big / read / 1e9);

  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const uint64_t rb = RowBytes(t, k);
    const GgmlType vt = VecDotType(t);
    std::vector<uint8_t> act(ActivationBytes(vt, k));
    QuantizeActivation(vt, x.data(), act.data(), k);
    kernels::RowDotAct ra;
    kernels::PrepareRowDot(t, act.data(), k, &ra);
    // 64 distinct random rows, repeated through the buffer.
    const int pattern = 64;
    std::vector<float> wf(pattern * k);
    for (float& v : wf) v = dist(rng);
    std::vector<uint8_t> w(pattern * rb);
    for (int r = 0; r < pattern; ++r) (void)Quantize(t, wf.data() + r * k, w.data() + r * rb, k);
    const int64_t nrows = static_cast<int64_t>(big / rb);
    for (int64_t r = 0; r < nrows; ++r)
      std::memcpy(buf.data() + r * rb, w.data() + (r % pattern) * rb, rb);
    std::vector<float> y(nrows);

    const int64_t hot = (512 << 10) / rb;  // 512 KB of rows per thread: in L2
    double th = 1e30, ts = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const double t0 = Now();
      Split(threads, threads * hot, [&](int64_t b, int64_t e) {
        for (int it = 0; it < 200; ++it)
          kernels::RowDots(t, buf.data() + b * rb, rb, e - b, ra, k, y.data() + b, 1);
      });
      th = std::min(th, (Now() - t0) / 200);
    }
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = Now();
      Split(threads, nrows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; r += call)
          kernels::RowDots(t, buf.data() + r * rb, rb, std::min<int64_t>(call, e - r), ra, k,
                           y.data() + r, 1);
      });
      ts = std::min(ts, Now() - t0);
    }
    // A group of tokens (a batched decoding step's width) over the same hot rows: the
    // arithmetic of RowDotsTokens, in GMAC/s (rows × k × tokens multiply-adds a second).
    const int group = kernels::RowDotGroup(t);
    std::vector<kernels::RowDotAct> ras(group, ra);
    std::vector<float> yt(static_cast<size_t>(group) * threads * hot);
    double tt = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const double t0 = Now();
      Split(threads, threads * hot, [&](int64_t b, int64_t e) {
        for (int it = 0; it < 50; ++it)
          kernels::RowDotsTokens(t, buf.data() + b * rb, rb, e - b, ras.data(), group, k,
                                 yt.data() + b, threads * hot);
      });
      tt = std::min(tt, (Now() - t0) / 50);
    }
    // The same group over the whole buffer, in calls as the engine makes them.
    std::vector<float> ytall(static_cast<size_t>(group) * nrows);
    double tts = 1e30;
    for (int rep = 0; rep < 2; ++rep) {
      const double t0 = Now();
      Split(threads, nrows, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; r += call)
          kernels::RowDotsTokens(t, buf.data() + r * rb, rb, std::min<int64_t>(call, e - r),
                                 ras.data(), group, k, ytall.data() + r, nrows);
      });
      tts = std::min(tts, Now() - t0);
    }
    const double stream = nrows * rb / ts / 1e9;
    std::printf(
        "%-5s hot %6.1f GB/s   stream %6.1f GB/s (%3.0f%% of ReadAll)   %d tokens hot %6.1f "
        "GMAC/s, stream %6.1f (1 token hot %6.1f)\n",
        TypeName(t), threads * hot * rb / th / 1e9, stream, 100 * stream / (big / read / 1e9),
        group, static_cast<double>(threads * hot) * k * group / tt / 1e9,
        static_cast<double>(nrows) * k * group / tts / 1e9,
        static_cast<double>(threads * hot) * k / th / 1e9);
  }
}
