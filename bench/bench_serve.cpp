// Load for an OpenAI-compatible server (ggswarm server or llama.cpp's llama-server):
// C clients at once, each streaming R completions of N tokens (greedy, ignore_eos), and
// the aggregate generated tokens/s, time to first token and time per output token (p50,
// p99), as one JSON line.
// Usage: bench_serve HOST PORT CLIENTS TOKENS [REQUESTS_PER_CLIENT]
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_serve HOST PORT CLIENTS TOKENS [REQUESTS_PER_CLIENT]\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]), clients = std::atoi(argv[3]), tokens = std::atoi(argv[4]);
  const int reqs = argc > 5 ? std::atoi(argv[5]) : 1;
  const char* prompts[] = {"Once upon a time", "The little dog", "In a big city", "Tom and Sue",
                           "A bird sang",      "The old man",    "Under the sea", "Her red hat"};
  std::mutex mu;
  std::vector<double> ttft, tpot;
  long generated = 0;
  int failed = 0;
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < clients; ++c)
    ts.emplace_back([&, c] {
      httplib::Client cl(host, port);
      cl.set_read_timeout(600, 0);
      for (int r = 0; r < reqs; ++r) {
        const json body = {{"prompt", std::string(prompts[c % 8]) + " " + std::to_string(c)},
                           {"max_tokens", tokens},
                           {"temperature", 0},
                           {"ignore_eos", true},
                           {"stream", true}};
        const auto start = Clock::now();
        Clock::time_point first{}, last{};
        int n = 0;
        std::string buf;
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.body = body.dump();
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char* d, size_t len, uint64_t, uint64_t) {
          buf.append(d, len);
          size_t at;
          while ((at = buf.find("\n\n")) != std::string::npos) {
            const std::string ev = buf.substr(0, at);
            buf.erase(0, at + 2);
            if (ev.rfind("data: {", 0) != 0) continue;
            const json j = json::parse(ev.substr(6), nullptr, false);
            if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) continue;
            const json& ch = j["choices"][0];
            if (ch.contains("text") && ch["text"].is_string() &&
                !ch["text"].get<std::string>().empty()) {
              const auto now = Clock::now();
              if (n == 0) first = now;
              last = now;
              ++n;
            }
          }
          return true;
        };
        auto res = cl.send(req);
        std::lock_guard<std::mutex> lock(mu);
        if (!res || res->status != 200 || n == 0) {
          ++failed;
          continue;
        }
        generated += n;
        ttft.push_back(std::chrono::duration<double, std::milli>(first - start).count());
        if (n > 1)
          tpot.push_back(std::chrono::duration<double, std::milli>(last - first).count() / (n - 1));
      }
    });
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  auto pct = [](std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
  };
  json out = {{"clients", clients},
              {"tokens", tokens},
              {"requests", clients * reqs},
              {"failed", failed},
              {"generated", generated},
              {"seconds", secs},
              {"tokens_per_second", generated / secs},
              {"ttft_ms_p50", pct(ttft, 0.5)},
              {"ttft_ms_p99", pct(ttft, 0.99)},
              {"tpot_ms_p50", pct(tpot, 0.5)},
              {"tpot_ms_p99", pct(tpot, 0.99)}};
  std::printf("%s\n", out.dump().c_str());
  return failed ? 1 : 0;
}
