#include "progress_bar.h"

#include <unistd.h>

#include <cstdio>

namespace ggswarm::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { Finish(); }

ProgressFn ProgressBar::fn() {
  if (!enabled_) return {};
  return [this](uint64_t done, uint64_t total) {
    std::lock_guard<std::mutex> lock(mu_);
    last_done_ = std::max(last_done_, done);
    last_total_ = total;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;  // at most 10 redraws/s
    last_draw_ = now;
    Draw(last_done_, total);
  };
}

void ProgressBar::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!enabled_ || !drawn_) return;
  Draw(last_total_, last_total_);
  std::fputc('\n', stderr);
  drawn_ = false;
  enabled_ = false;
}

void ProgressBar::Draw(uint64_t done, uint64_t total) {
  constexpr int kWidth = 30;
  const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(frac * kWidth);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(fill, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%-12s [%s] %5.1f%%  %8.1f / %.1f MB  %7.1f MB/s", label_.c_str(),
               bar.c_str(), 100 * frac, done / 1e6, total / 1e6,
               secs > 0 ? done / 1e6 / secs : 0.0);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace ggswarm::cli
