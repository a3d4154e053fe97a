// A child process for tests that run several ggswarm programs at once (peers, fetchers):
// its stdout and stderr go to a log file the test can wait on. The destructor kills it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ggswarm::testing {

class Process {
 public:
  // stdout and stderr go to `log`, or stderr to `err_log` when given.
  Process(const std::vector<std::string>& argv, const std::string& log,
          const std::string& err_log = "")
      : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      if (err_log.empty()) {
        ::dup2(fd, 2);
      } else {
        const int efd = ::open(err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(efd, 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (running()) {
      Kill(SIGKILL);
      Wait(10);
    }
  }
  Process(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() {
    if (done_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      done_ = true;
      code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return !done_;
  }
  void Kill(int sig) { ::kill(pid_, sig); }
  // The exit code (128 + signal when killed), or -1 when it is still running after `s`.
  int Wait(double s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
    while (running() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return running() ? -1 : code_;
  }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Waits until the log contains `text` `count` times; false after `s` seconds or when the
  // process ends first.
  bool WaitFor(const std::string& text, double s, int count = 1) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
    while (std::chrono::steady_clock::now() < until) {
      const std::string log = Log();
      int n = 0;
      for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) n++;
      if (n >= count) return true;
      if (!running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
  std::string log_;
};

}  // namespace ggswarm::testing
