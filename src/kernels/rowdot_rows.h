// The loop every row-dot kernel runs in (rowdot_avx512.cpp, rowdot_avx2.cpp): included
// after the file's target pragma, so that each file compiles it for its own instruction set.
//
// Generation streams every weight once per token, so the row dots are judged by how close
// they come to the memory's read bandwidth, not by their arithmetic. One core reading one
// sequential stream keeps too few cache-line fetches in flight (about 75% of the bandwidth
// here, software prefetch included); reading several streams at once fills the queues. So
// a call's rows are cut into kRowDotStreams contiguous parts, and the kernels step through
// one row of each part side by side, a group of blocks at a time, prefetching each stream
// ahead into L1.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.h"

namespace ggswarm::kernels::rowdot {

// How far ahead of each stream the weights are fetched.
// (Measured on Sapphire Rapids, Q4_0 rows of 2048 elements, one core: one stream with the
// best prefetch reads 11 GB/s, four 14.4, eight 14.7, against 15.8 for a plain read of
// eight streams; both cores: 22, 28 and 29 GB/s. Prefetching into L1 (T0) rather than L2
// gave 1-3% more generation speed, though a plain read, ReadAll, is faster with T1.)
constexpr int kPrefetch = 2048;

// Runs kernel K over nrows rows: kRowDotStreams rows at a time, one from each of
// kRowDotStreams equal contiguous parts, then the rows left over one at a time. K gives Acc,
// kStepBytes (the bytes of a row one Step reads), steps, Zero(), Step(row, j, acc) and
// Finish(row, acc).
template <typename K>
inline void Rows(const K& kern, const uint8_t* rows, uint64_t rb, int64_t nrows, float* y,
                 int64_t ys) {
  constexpr int kStreams = kRowDotStreams;
  const int64_t per = nrows / kStreams;
  // The prefetches in the loop run kPrefetch ahead, so each part's first kPrefetch bytes
  // would come in one demand miss at a time: ask for them all at once. (A call starts four
  // cold streams; the pool's guided chunks make twenty or more calls per matrix product, and
  // this burst made the products about 2% faster.)
  const int64_t head = std::min<int64_t>(kPrefetch, per * static_cast<int64_t>(rb));
  for (int64_t o = 0; o < head; o += 64)
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s)
      _mm_prefetch(reinterpret_cast<const char*>(rows + s * per * rb) + o, _MM_HINT_T0);
  for (int64_t r = 0; r < per; ++r) {
    const uint8_t* x[kStreams];
    typename K::Acc acc[kStreams];
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s) {
      x[s] = rows + (r + s * per) * rb;
      acc[s] = kern.Zero();
    }
    for (int64_t j = 0; j < kern.steps; ++j) {
#pragma GCC unroll 8
      for (int s = 0; s < kStreams; ++s) {
        const char* p = reinterpret_cast<const char*>(x[s]) + j * K::kStepBytes + kPrefetch;
        for (int o = 0; o < K::kStepBytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
        kern.Step(x[s], j, acc[s]);
      }
    }
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s) y[(r + s * per) * ys] = kern.Finish(x[s], acc[s]);
  }
  for (int64_t r = per * kStreams; r < nrows; ++r) {
    const uint8_t* x = rows + r * rb;
    typename K::Acc acc = kern.Zero();
    for (int64_t j = 0; j < kern.steps; ++j) {
      const char* p = reinterpret_cast<const char*>(x) + j * K::kStepBytes + kPrefetch;
      for (int o = 0; o < K::kStepBytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
      kern.Step(x, j, acc);
    }
    y[r * ys] = kern.Finish(x, acc);
  }
}

// Rows for T tokens at once (kern[0 … T-1], one per activation row, over the same weights):
// a step's weights are loaded and unpacked once (K::Load) and applied to each token
// (K::Apply), so that each token's sums are taken exactly as Rows takes them, whatever the
// number of streams: Streams rows side by side (contiguous parts of the call's rows), each
// step's activations read once for all of them; y[t * ts + r].
template <int T, int Streams, typename K>
inline void RowsTokens(const K* kern, const uint8_t* rows, uint64_t rb, int64_t nrows, float* y,
                       int64_t ts) {
  constexpr int kStreams = Streams;
  const int64_t per = nrows / kStreams;
  for (int64_t r = 0; r < per; ++r) {
    const uint8_t* x[kStreams];
    typename K::Acc acc[kStreams][T];
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s) {
      x[s] = rows + (r + s * per) * rb;
      for (int t = 0; t < T; ++t) acc[s][t] = kern[t].Zero();
    }
    for (int64_t j = 0; j < kern[0].steps; ++j) {
#pragma GCC unroll 8
      for (int s = 0; s < kStreams; ++s) {
        const char* p = reinterpret_cast<const char*>(x[s]) + j * K::kStepBytes + kPrefetch;
        for (int o = 0; o < K::kStepBytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
        const typename K::W w = kern[0].Load(x[s], j);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) kern[t].Apply(w, j, acc[s][t]);
      }
    }
#pragma GCC unroll 8
    for (int s = 0; s < kStreams; ++s)
      for (int t = 0; t < T; ++t) y[t * ts + r + s * per] = kern[t].Finish(x[s], acc[s][t]);
  }
  for (int64_t r = per * kStreams; r < nrows; ++r) {
    const uint8_t* x = rows + r * rb;
    typename K::Acc acc[T];
    for (int t = 0; t < T; ++t) acc[t] = kern[t].Zero();
    for (int64_t j = 0; j < kern[0].steps; ++j) {
      const typename K::W w = kern[0].Load(x, j);
      for (int t = 0; t < T; ++t) kern[t].Apply(w, j, acc[t]);
    }
    for (int t = 0; t < T; ++t) y[t * ts + r] = kern[t].Finish(x, acc[t]);
  }
}

// n tokens in groups of N, then one group of the N - 1 or fewer left: calls
// of(std::integral_constant<int, T>{}, first) for each group of T tokens from token `first`
// (the kernels are templates over the group size, each weight block decoded once for the
// group).
template <int N, typename F>
inline void InGroupsOf(int n, F&& of) {
  int t = 0;
  for (; t + N <= n; t += N) of(std::integral_constant<int, N>{}, t);
  if constexpr (N > 1) {
    if (t < n) InGroupsOf<N - 1>(n - t, [&](auto group, int u) { of(group, t + u); });
  }
}

}  // namespace ggswarm::kernels::rowdot
