// Helpers shared by the tests: temporary directories, whole-file I/O, the shared models.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace ggswarm::testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "ggswarm-test-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline std::string SharedDir() { return GGSWARM_SHARED_DIR; }

// Polls `done` until it holds; false when it still does not after `seconds`. The one way
// tests wait for something (a log line, a file, a process's memory): never a fixed sleep.
inline bool WaitUntil(double seconds, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// Every GGUF in ../shared/models (empty when ../shared is absent).
inline std::vector<std::string> SharedModels() {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(SharedDir() + "/models", ec)) {
    if (e.path().extension() == ".gguf") v.push_back(e.path().string());
  }
  std::sort(v.begin(), v.end());
  return v;
}

#define GGSWARM_REQUIRE_SHARED_MODELS()                                                     \
  do {                                                                                      \
    if (::ggswarm::testing::SharedModels().empty())                                         \
      GTEST_SKIP() << "../shared/models is absent: this test needs the shared GGUF models"; \
  } while (0)

}  // namespace ggswarm::testing
