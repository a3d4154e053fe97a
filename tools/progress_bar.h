// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "base/progress.h"

namespace ggswarm::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  ProgressFn fn();  // valid while the bar lives
  void Finish();

 private:
  void Draw(uint64_t done, uint64_t total);
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  uint64_t last_done_ = 0, last_total_ = 0;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ggswarm::cli
