#include "base/thread_pool.h"

#include <algorithm>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GGSWARM_PAUSE() _mm_pause()
#else
#define GGSWARM_PAUSE() ((void)0)
#endif

namespace ggswarm {
namespace {
// Spins before sleeping: about a millisecond, longer than any gap between two matrix
// products of one token.
constexpr int kSpins = 1 << 14;
constexpr int kYieldEvery = 1 << 10;  // pauses between yields while spinning (~30 µs)
constexpr int kRunSpins = 1 << 12;    // pauses the caller of Run spins before yielding
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Work(int index) {
  // Guided: each chunk is a 1/(2 · threads) share of what is left, in whole grains, so the
  // chunks shrink towards the end and the threads finish within about one grain of each
  // other (a fixed chunk left one thread waiting half a chunk on average at every call).
  const int64_t share = 2 * size();
  int64_t b = next_.load(std::memory_order_relaxed);
  for (;;) {
    if (b >= n_) return;
    const int64_t want = (n_ - b) / share;
    const int64_t len = std::max(grain_, (want + grain_ - 1) / grain_ * grain_);
    if (!next_.compare_exchange_weak(b, b + len, std::memory_order_relaxed)) continue;
    (*job_)(b, std::min(n_, b + len), index);
    b = next_.load(std::memory_order_relaxed);
  }
}

void ThreadPool::Run(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                     int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  n_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // publishes the job (sequentially consistent)
  if (sleepers_.load() > 0) generation_.notify_all();
  Work(0);
  // The last chunks are at most a few microseconds away; after that, a worker that has not
  // finished is probably not running (more threads than cores: other processes, several
  // stages on one machine), so give it the core rather than spin against it.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kRunSpins) {
      GGSWARM_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

void ThreadPool::Worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < kSpins) {
        // Now and then let another runnable thread have this core.
        if ((spins & (kYieldEvery - 1)) == 0) {
          std::this_thread::yield();
        } else {
          GGSWARM_PAUSE();
        }
        continue;
      }
      sleepers_.fetch_add(1);
      if (generation_.load() == seen) generation_.wait(seen);
      sleepers_.fetch_sub(1);
      spins = 0;
    }
    seen = g;
    if (stop_.load()) return;
    Work(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace ggswarm
