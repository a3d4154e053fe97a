// A fixed set of worker threads that lives as long as the engine (no thread is created per
// token). Run(n, fn) hands out the range [0, n) in chunks to the calling thread and the
// workers, which take the next chunk as they finish one (so both cores finish together
// even when one is slowed), and returns when all are done. Chunks shrink as the range runs
// out (guided scheduling), down to one grain.
//
// Between jobs the workers spin for a short while (a token's matrix products follow each
// other within microseconds, far faster than a sleeping thread wakes), then sleep.
//
// Reading ahead: a job can be announced before the one that precedes it runs (Announce).
// Then each thread knows its first chunk of it, and while it waits (at the end of the job
// before, or between jobs while the caller works alone) it reads the first bytes that
// chunk will read into its caches: memory that would stand idle streams part of the next
// job instead.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
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
  // `grain` (except the last). Each thread index runs on one thread at a time. `first`, from
  // Planned(): thread i takes [i * first, (i + 1) * first) first (a thread that has not come
  // by the end has its chunk taken by another).
  void Run(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1,
           int64_t first = 0);

  // Memory a thread will read first: `streams` spans of `bytes` each, read side by side.
  struct ReadAhead {
    static constexpr int kMaxStreams = 4;
    const uint8_t* p[kMaxStreams] = {};
    int streams = 0;
    int64_t bytes = 0;
  };
  // Announces the job the caller will Run next with first = `first` (the memory must stay
  // mapped until the next Announce or Forget): `key` names it, ahead[i] is what thread i
  // will read first (ahead.size() == size()).
  void Announce(const void* key, int64_t first, const std::vector<ReadAhead>& ahead);
  // The chunk a thread takes first from [0, n) under guided scheduling: the `first` to
  // announce for a job that is to start as Run would start it.
  int64_t FirstChunk(int64_t n, int64_t grain) const;
  // `first` for the job `key` when it was the last one announced, else 0.
  int64_t Planned(const void* key) const { return key == key_ ? first_ : 0; }
  // Drops the announcement (before the memory it names goes away).
  void Forget();

 private:
  void Worker(int index);
  void Work(int index);
  // Reads a little of what thread `index` was told to read ahead; false when nothing is
  // left (or nothing was announced).
  bool ReadSome(int index);

  std::vector<std::thread> workers_;
  // The current job; written by Run before `generation_` is bumped.
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};

  // The announcement (caller's side), and its read-ahead in two slots: the caller writes
  // one while threads may still read the other.
  const void* key_ = nullptr;
  int64_t first_ = 0;
  struct alignas(64) Reader {
    std::atomic<bool> in{false};  // reading the slot now
    int64_t done = 0;             // bytes of each stream read
  };
  struct Slot {
    std::vector<ReadAhead> ahead;
    std::unique_ptr<Reader[]> readers;
  };
  Slot slots_[2];
  alignas(64) std::atomic<int> slot_{-1};  // the slot in use, -1: none
  // Planned runs: whether each thread's first chunk has been taken.
  std::unique_ptr<std::atomic<bool>[]> taken_;
  int64_t first_run_ = 0;
};

}  // namespace ggswarm
