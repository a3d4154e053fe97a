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
// Read ahead a little at a time, so that a waiting thread sees its job come within a
// fraction of a microsecond: bytes of each stream per ReadSome.
constexpr int64_t kPiece = 512;

// Guided: each chunk is a 1/(2 · threads) share of what is left, in whole grains, so the
// chunks shrink towards the end and the threads finish within about one grain of each
// other (a fixed chunk left one thread waiting half a chunk on average at every call).
int64_t GuidedChunk(int64_t left, int threads, int64_t grain) {
  const int64_t want = left / (2 * threads);
  return std::max(grain, (want + grain - 1) / grain * grain);
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (Slot& slot : slots_) {
    slot.ahead.resize(threads);
    slot.readers = std::make_unique<Reader[]>(threads);
  }
  taken_ = std::make_unique<std::atomic<bool>[]>(threads);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Work(int index) {
  const int64_t first = first_run_;
  auto own = [&](int i) {
    if (!taken_[i].exchange(true, std::memory_order_relaxed))
      (*job_)(i * first, std::min(n_, (i + 1) * first), index);
  };
  if (first > 0) own(index);
  int64_t b = next_.load(std::memory_order_relaxed);
  for (;;) {
    if (b >= n_) break;
    const int64_t len = GuidedChunk(n_ - b, size(), grain_);
    if (!next_.compare_exchange_weak(b, b + len, std::memory_order_relaxed)) continue;
    (*job_)(b, std::min(n_, b + len), index);
    b = next_.load(std::memory_order_relaxed);
  }
  // A planned chunk whose thread has not come yet (asleep, or not given a core).
  if (first > 0)
    for (int i = 0; i < size(); ++i) own(i);
}

void ThreadPool::Run(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain,
                     int64_t first) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  n_ = n;
  grain_ = grain;
  first_run_ = first > 0 && first * size() <= n ? first : 0;
  for (int i = 0; i < size(); ++i) taken_[i].store(false, std::memory_order_relaxed);
  next_.store(first_run_ * size(), std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // publishes the job (sequentially consistent)
  if (sleepers_.load() > 0) generation_.notify_all();
  Work(0);
  // The last chunks are at most a few microseconds away; after that, a worker that has not
  // finished is probably not running (more threads than cores: other processes, several
  // stages on one machine), so give it the core rather than spin against it.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (ReadSome(0)) continue;
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
      if (ReadSome(index)) continue;
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

int64_t ThreadPool::FirstChunk(int64_t n, int64_t grain) const {
  return GuidedChunk(n, size(), std::max<int64_t>(1, grain));
}

void ThreadPool::Announce(const void* key, int64_t first, const std::vector<ReadAhead>& ahead) {
  key_ = key;
  first_ = first;
  if (workers_.empty()) return;  // nobody ever waits
  // The slot not in use; a thread that looked at it before it went out of use may still be
  // reading it (rarely: it was switched away from one announcement ago).
  const int t = slot_.load(std::memory_order_relaxed) == 0 ? 1 : 0;
  Slot& slot = slots_[t];
  for (int i = 0; i < size(); ++i)
    while (slot.readers[i].in.load()) GGSWARM_PAUSE();
  for (int i = 0; i < size(); ++i) {
    slot.ahead[i] = static_cast<size_t>(i) < ahead.size() ? ahead[i] : ReadAhead{};
    slot.readers[i].done = 0;
  }
  slot_.store(t);
}

void ThreadPool::Forget() {
  key_ = nullptr;
  first_ = 0;
  slot_.store(-1);
  // From here on no thread starts reading; wait for any that is in the middle of it.
  for (Slot& slot : slots_)
    for (int i = 0; i < size(); ++i)
      while (slot.readers[i].in.load()) GGSWARM_PAUSE();
}

bool ThreadPool::ReadSome(int index) {
  const int t = slot_.load();
  if (t < 0) return false;
  Slot& slot = slots_[t];
  Reader& r = slot.readers[index];
  // Announce and Forget switch the slot first and then wait for `in` to clear; a reader
  // sets `in` first and then checks the slot (both sequentially consistent), so the two
  // never both go ahead.
  r.in.store(true);
  if (slot_.load() != t) {
    r.in.store(false, std::memory_order_release);
    return true;
  }
  const ReadAhead& a = slot.ahead[index];
  const int64_t end = std::min(a.bytes, r.done + kPiece);
  // Plain loads, one per cache line, side by side as the kernels read them: the hardware
  // prefetcher follows them as it follows the kernels.
  const int streams = std::min(a.streams, ReadAhead::kMaxStreams);
  for (int64_t o = r.done; o < end; o += 64)
    for (int s = 0; s < streams; ++s) (void)*static_cast<const volatile uint8_t*>(a.p[s] + o);
  const bool more = end < a.bytes;
  r.done = std::max(r.done, end);
  r.in.store(false, std::memory_order_release);
  return more;
}

}  // namespace ggswarm
