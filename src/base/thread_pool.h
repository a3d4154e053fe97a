// A fixed set of worker threads that lives as long as the engine (no thread is created per
// token). Run(n, fn) hands out the range [0, n) in chunks to the calling thread and the
// workers, which take the next chunk as they finish one (so both cores finish together
// even when one is slowed), and returns when all are done. Chunks shrink as the range runs
// out (guided scheduling), down to one grain.
//
// Between jobs the workers spin for a short while (a token's matrix products follow each
// other within microseconds, far faster than a sleeping thread wakes), then sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace ggswarm {

class ThreadPool {
 public:
  // `threads` <= 0: one per core.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(begin, end, thread_index) over chunks of [0, n); chunk edges are multiples of
  // `grain` (except the last). Each thread index runs on one thread at a time.
  void Run(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  void Worker(int index);
  void Work(int index);

  std::vector<std::thread> workers_;
  // The current job; written by Run before `generation_` is bumped.
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace ggswarm
