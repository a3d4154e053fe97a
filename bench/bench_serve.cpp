// Load for an OpenAI-compatible server (ggswarm server or llama.cpp's llama-server):
// C clients at once, each streaming R completions of N tokens (greedy, ignore_eos), and
// the aggregate generated tokens/s, time to first token and time per output token (p50,
// p99), as one JSON line. With --chat TURNS instead: one client's conversation of TURNS
// turns after a long system message, each turn's messages the previous ones, the answer
// (N tokens) and a new question — a JSON line per turn with its prompt tokens, how many the
// server found cached (usage.prompt_tokens_details.cached_tokens) and the time to the first
// token.
// Usage: bench_serve HOST PORT CLIENTS TOKENS [REQUESTS_PER_CLIENT]
//        bench_serve HOST PORT --chat TURNS TOKENS
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

namespace {

// One streamed request: the times of the first and last pieces of text, their count, the
// text and the usage object (when the server sends one). False when it failed.
struct Streamed {
  Clock::time_point start, first, last;
  int n = 0;
  std::string text;
  json usage;
};
bool Stream(httplib::Client& cl, const std::string& path, const json& body, Streamed* out) {
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
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
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["usage"].is_object()) out->usage = j["usage"];
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& ch = j["choices"][0];
      const json* t = nullptr;
      if (ch.contains("text")) t = &ch["text"];
      if (ch.contains("delta") && ch["delta"].contains("content")) t = &ch["delta"]["content"];
      if (t && t->is_string() && !t->get<std::string>().empty()) {
        const auto now = Clock::now();
        if (out->n == 0) out->first = now;
        out->last = now;
        ++out->n;
        out->text += t->get<std::string>();
      }
    }
    return true;
  };
  out->start = Clock::now();
  auto res = cl.send(req);
  return res && res->status == 200 && out->n > 0;
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int Chat(const std::string& host, int port, int turns, int tokens) {
  httplib::Client cl(host, port);
  cl.set_read_timeout(600, 0);
  std::string system = "You are a storyteller.";
  for (int i = 0; i < 24; ++i)
    system += " Rule " + std::to_string(i) +
              ": every story has a small animal, a kind friend and a happy ending.";
  json messages = json::array({{{"role", "system"}, {"content", system}}});
  for (int t = 0; t < turns; ++t) {
    messages.push_back({{"role", "user"},
                        {"content", "Tell me part " + std::to_string(t + 1) + " of the story."}});
    const json body = {{"messages", messages}, {"max_tokens", tokens},
                       {"temperature", 0},     {"ignore_eos", true},
                       {"stream", true},       {"stream_options", {{"include_usage", true}}}};
    Streamed s;
    if (!Stream(cl, "/v1/chat/completions", body, &s)) {
      std::fprintf(stderr, "turn %d failed\n", t + 1);
      return 1;
    }
    const json out = {
        {"turn", t + 1},
        {"prompt_tokens", s.usage.value("prompt_tokens", 0)},
        {"cached_tokens", s.usage.contains("prompt_tokens_details")
                              ? s.usage["prompt_tokens_details"].value("cached_tokens", 0)
                              : 0},
        {"ttft_ms", Ms(s.start, s.first)}};
    std::printf("%s\n", out.dump().c_str());
    messages.push_back({{"role", "assistant"}, {"content", s.text}});
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: bench_serve HOST PORT CLIENTS TOKENS [REQUESTS_PER_CLIENT]\n"
                 "       bench_serve HOST PORT --chat TURNS TOKENS\n");
    return 2;
  }
  const std::string host = argv[1];
  if (std::string(argv[3]) == "--chat")
    return Chat(host, std::atoi(argv[2]), std::atoi(argv[4]), argc > 5 ? std::atoi(argv[5]) : 32);
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
        Streamed st;
        const bool ok = Stream(cl, "/v1/completions", body, &st);
        std::lock_guard<std::mutex> lock(mu);
        if (!ok) {
          ++failed;
          continue;
        }
        const int n = st.n;
        const auto start = st.start, first = st.first, last = st.last;
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
