// `ggswarm server`'s HTTP API (api/server.h) seen by a real HTTP client (cpp-httplib's):
// llama.cpp's greedy text, streams that add up to the whole answer, many clients at once,
// OpenAI-shaped errors, the API key, a full queue and clients that go away.
#include "api/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "sse.h"
#include "test_util.h"

namespace ggswarm::api {
namespace {

using json = nlohmann::json;
using ::ggswarm::testing::SharedDir;
using ::ggswarm::testing::StreamText;
using ::ggswarm::testing::WaitUntil;

#define REQUIRE_SHARED()                          \
  if (::ggswarm::testing::SharedModels().empty()) \
  GTEST_SKIP() << "../shared/models is absent: this test needs the shared GGUF models"

struct Running {
  std::unique_ptr<Server> server;
  std::thread thread;
  int port = 0;
  ~Running() {
    if (server) server->Stop();
    if (thread.joinable()) thread.join();
  }
};

std::unique_ptr<Running> Start(runtime::ServiceOptions so, ServerOptions o = {}) {
  auto r = std::make_unique<Running>();
  auto svc = runtime::OpenBatchService(SharedDir() + "/models/stories260K-q8_0.gguf", so);
  EXPECT_TRUE(svc.ok()) << svc.status().ToString();
  if (!svc.ok()) return nullptr;
  o.port = 0;
  if (o.chat_template.empty()) o.chat_template = "chatml";
  auto s = Server::Start(std::move(*svc), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  r->server = std::move(*s);
  r->port = r->server->port();
  r->thread = std::thread([p = r->server.get()] { p->Run(); });
  httplib::Client c("127.0.0.1", r->port);
  EXPECT_TRUE(WaitUntil(10, [&] {
    auto h = c.Get("/health");
    return h && h->status == 200;
  }));
  return r;
}

json Golden(const std::string& name) {
  std::ifstream f(SharedDir() + "/golden/" + name);
  return json::parse(f);
}

TEST(Server, CompletionsGiveLlamaCppsGreedyText) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 2, .n_ctx = 512, .parallel = 4});
  ASSERT_TRUE(r);
  httplib::Client c("127.0.0.1", r->port);
  for (const char* g : {"stories260K-q8_0.p1.json", "stories260K-q8_0.p2.json"}) {
    const json gold = Golden(g);
    json req = {{"prompt", gold["prompt"]},
                {"max_tokens", gold["generated_tokens"].size()},
                {"temperature", 0},
                {"ignore_eos", true}};
    auto res = c.Post("/v1/completions", req.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], gold["generated_text"]) << g;
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], gold["prompt_tokens"].size());
    EXPECT_EQ(j["usage"]["completion_tokens"], gold["generated_tokens"].size());
    // The same as a stream: the chunks add up to the same text, usage in the last. The
    // prompt is the one just answered, so it comes from the cache that request left.
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}};
    auto s = c.Post("/v1/completions", req.dump(), "application/json");
    ASSERT_TRUE(s);
    ASSERT_EQ(s->status, 200);
    EXPECT_NE(s->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    std::string finish;
    json usage;
    bool done = false;
    EXPECT_EQ(StreamText(s->body, false, &finish, &usage, &done), gold["generated_text"]);
    EXPECT_EQ(finish, "length");
    EXPECT_TRUE(done) << "no data: [DONE]";
    EXPECT_EQ(usage["completion_tokens"], gold["generated_tokens"].size());
    // The same prompt again: all of it but the last token came from the slot's cache.
    EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], gold["prompt_tokens"].size() - 1);
  }
  // Stop strings cut the text before them, with finish_reason "stop".
  json req = {
      {"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {". She"}}};
  auto res = c.Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(res);
  const json j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["text"], ", there was a little girl named Lily");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // logit_bias -100 on the golden's first token: a greedy answer starts otherwise, and with
  // the bias on a token nobody picks, the golden text is unchanged.
  const json gold = Golden("stories260K-q8_0.p1.json");
  const int32_t first = gold["generated_tokens"][0].get<int32_t>();
  json biased = {{"prompt", gold["prompt"]}, {"max_tokens", 1}, {"temperature", 0}};
  auto plain = c.Post("/v1/completions", biased.dump(), "application/json");
  ASSERT_TRUE(plain && plain->status == 200);
  const std::string plain_text = json::parse(plain->body)["choices"][0]["text"];
  biased["logit_bias"] = {{std::to_string(first), -100}};
  auto b = c.Post("/v1/completions", biased.dump(), "application/json");
  ASSERT_TRUE(b && b->status == 200) << (b ? b->body : "no answer");
  EXPECT_NE(json::parse(b->body)["choices"][0]["text"], plain_text) << b->body;
  biased["logit_bias"] = {{std::to_string(first == 5 ? 6 : 5), -100}};
  biased["max_tokens"] = gold["generated_tokens"].size();
  biased["ignore_eos"] = true;
  auto u = c.Post("/v1/completions", biased.dump(), "application/json");
  ASSERT_TRUE(u && u->status == 200);
  EXPECT_EQ(json::parse(u->body)["choices"][0]["text"], gold["generated_text"]);
}

// Chat: streamed and whole answers agree; logprobs name the chosen token, most likely first
// when greedy.
TEST(Server, ChatStreamAndWholeAnswerAgree) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 2, .n_ctx = 512, .parallel = 2});
  ASSERT_TRUE(r);
  httplib::Client c("127.0.0.1", r->port);
  json req = {{"messages",
               {{{"role", "system"}, {"content", "Tell stories."}},
                {{"role", "user"}, {"content", "Once upon a time"}}}},
              {"max_tokens", 30},
              {"temperature", 0},
              {"logprobs", true},
              {"top_logprobs", 3}};
  auto whole = c.Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const json w = json::parse(whole->body);
  EXPECT_EQ(w["object"], "chat.completion");
  EXPECT_EQ(w["choices"][0]["message"]["role"], "assistant");
  const std::string text = w["choices"][0]["message"]["content"];
  EXPECT_FALSE(text.empty());
  const json& lp = w["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), w["usage"]["completion_tokens"].get<size_t>());
  for (const json& t : lp) {
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
  }
  req["stream"] = true;
  auto s = c.Post("/v1/chat/completions", req.dump(), "application/json");
  ASSERT_TRUE(s);
  EXPECT_EQ(StreamText(s->body, true), text);
}

// Eight clients streaming at once each get the text they get alone.
TEST(Server, EightConcurrentStreamsGetTheirAloneText) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 2, .n_ctx = 512, .parallel = 8});
  ASSERT_TRUE(r);
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Tom",   "The dog",
                                            "One day, a bird",  "Sam had a ball", "The sun",
                                            "A little cat",     "Mom said"};
  auto body = [&](size_t i, bool stream) {
    return json{{"prompt", prompts[i]},
                {"max_tokens", 48},
                {"temperature", 0},
                {"ignore_eos", true},
                {"stream", stream}}
        .dump();
  };
  std::vector<std::string> alone(prompts.size()), together(prompts.size());
  httplib::Client c("127.0.0.1", r->port);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto res = c.Post("/v1/completions", body(i, false), "application/json");
    ASSERT_TRUE(res);
    alone[i] = json::parse(res->body)["choices"][0]["text"];
  }
  std::vector<std::thread> ts;
  for (size_t i = 0; i < prompts.size(); ++i)
    ts.emplace_back([&, i] {
      httplib::Client ci("127.0.0.1", r->port);
      auto res = ci.Post("/v1/completions", body(i, true), "application/json");
      if (res && res->status == 200) together[i] = StreamText(res->body, false);
    });
  for (auto& t : ts) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << prompts[i];
}

long RssMiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  return 0;
}

// 64 clients streaming at once into 4 slots and a queue: /health is answered throughout,
// every request finishes with the text it gets alone, and memory comes back.
TEST(Server, SixtyFourStreamingClientsAllFinishWithTheirOwnText) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 2, .n_ctx = 128, .parallel = 4, .max_queue = 64});
  ASSERT_TRUE(r);
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Tom", "The dog",
                                            "One day, a bird"};
  auto body = [&](size_t i, bool stream) {
    return json{{"prompt", prompts[i % prompts.size()]},
                {"max_tokens", 24},
                {"temperature", 0},
                {"ignore_eos", true},
                {"stream", stream}}
        .dump();
  };
  std::vector<std::string> alone(prompts.size());
  httplib::Client c("127.0.0.1", r->port);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto res = c.Post("/v1/completions", body(i, false), "application/json");
    ASSERT_TRUE(res);
    alone[i] = json::parse(res->body)["choices"][0]["text"];
  }
  const long rss0 = RssMiB();
  for (int round = 0; round < 2; ++round) {
    std::atomic<bool> finished{false};
    std::atomic<int> health_ok{0}, health_bad{0};
    std::thread health([&] {
      httplib::Client h("127.0.0.1", r->port);
      h.set_read_timeout(10, 0);
      while (!finished.load()) {
        auto res = h.Get("/health");
        (res && res->status == 200 ? health_ok : health_bad)++;
      }
    });
    std::vector<std::string> got(64);
    std::vector<int> status(64, 0);
    std::vector<std::thread> ts;
    for (size_t i = 0; i < got.size(); ++i)
      ts.emplace_back([&, i] {
        httplib::Client ci("127.0.0.1", r->port);
        ci.set_read_timeout(120, 0);
        auto res = ci.Post("/v1/completions", body(i, true), "application/json");
        if (!res) {
          status[i] = -static_cast<int>(res.error());
          return;
        }
        status[i] = res->status;
        if (res->status == 200) got[i] = StreamText(res->body, false);
      });
    for (auto& t : ts) t.join();
    finished = true;
    health.join();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(status[i], 200) << "client " << i
                                << (status[i] < 0
                                        ? ": " + httplib::to_string(
                                                     static_cast<httplib::Error>(-status[i]))
                                        : "");
      EXPECT_EQ(got[i], alone[i % prompts.size()]) << "client " << i;
    }
    EXPECT_GT(health_ok.load(), 0);
    EXPECT_EQ(health_bad.load(), 0);
  }
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(RssMiB() - rss0, 64) << "the server kept memory after 128 requests";
#endif
}

TEST(Server, BadRequestsGetOpenAiErrorsAndTheServerGoesOn) {
  REQUIRE_SHARED();
  ServerOptions small;
  small.max_body = 1 << 20;
  auto r = Start({.threads = 1, .n_ctx = 64, .parallel = 1}, small);
  ASSERT_TRUE(r);
  httplib::Client c("127.0.0.1", r->port);
  struct Case {
    const char* path;
    std::string body;
    int status;
    const char* says;
  };
  const std::string long_prompt(2000, 'a');
  const std::vector<Case> cases = {
      {"/v1/chat/completions", "{not json", 400, "not a JSON object"},
      {"/v1/chat/completions", "[1,2]", 400, "not a JSON object"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "'messages'"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "'messages'"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", 400, "content"},
      {"/v1/chat/completions", R"({"messages": [{"role": "assistant", "content": "x"}]})", 400,
       "alternate"},
      {"/v1/chat/completions",
       R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})", 404,
       "'gpt-4' does not exist"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", 400,
       "'n'"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", 400,
       "'tools'"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", 400,
       "'temperature' must be a number"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": "x", "frequency_penalty": 3})", 400,
       "frequency_penalty must be a number from -2 to 2"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": {"abc": 1}})", 400, "'abc'"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": [1]})", 400, "'logit_bias'"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": {"5": 150}})", 400,
       "logit_bias of token 5"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": {"99999": 1}})", 400,
       "not one of the vocabulary's 512"},
      {"/v1/completions", R"({"prompt": 7})", 400, "'prompt'"},
      {"/v1/completions", json{{"prompt", long_prompt}}.dump(), 400, "does not fit the context"},
      {"/v1/completions", "{\"prompt\": \"\xff\xfe\"}", 400, "UTF-8"},
      {"/v1/completions", std::string(2 << 20, ' '), 413, "larger than"},
      {"/detokenize", R"({"tokens": [1, -4]})", 400, "token ids"},
      {"/nowhere", "{}", 404, "no such endpoint"},
  };
  for (const Case& k : cases) {
    auto res = c.Post(k.path, k.body, "application/json");
    ASSERT_TRUE(res) << k.path << " " << k.body.substr(0, 60);
    EXPECT_EQ(res->status, k.status) << k.body.substr(0, 60) << " → " << res->body;
    const json e = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << res->body;
    EXPECT_TRUE(e["error"]["type"].is_string());
    EXPECT_NE(e["error"]["message"].get<std::string>().find(k.says), std::string::npos)
        << k.body.substr(0, 60) << " → " << res->body;
  }
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto tk = c.Post("/tokenize", R"({"content": "Once upon a time"})", "application/json");
  ASSERT_TRUE(tk);
  EXPECT_EQ(json::parse(tk->body)["tokens"], json({403, 407, 261, 378}));
  auto dt = c.Post("/detokenize", R"({"tokens": [403, 407, 261, 378]})", "application/json");
  ASSERT_TRUE(dt);
  EXPECT_EQ(json::parse(dt->body)["content"], "Once upon a time");
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>ggswarm chat</title>"), std::string::npos);
  // A local model has no swarm to show.
  auto swarm = c.Get("/v1/swarm");
  ASSERT_TRUE(swarm);
  EXPECT_EQ(swarm->status, 404);
  EXPECT_EQ(json::parse(swarm->body)["error"]["code"], "not_a_swarm");
}

// A port in use is refused with a message, not shared.
TEST(Server, APortInUseIsRefused) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 1, .n_ctx = 64, .parallel = 1});
  ASSERT_TRUE(r);
  auto svc = runtime::OpenBatchService(SharedDir() + "/models/stories260K-q8_0.gguf",
                                       {.threads = 1, .n_ctx = 64, .parallel = 1});
  ASSERT_TRUE(svc.ok());
  ServerOptions same;
  same.port = r->port;
  same.chat_template = "chatml";
  auto second = Server::Start(std::move(*svc), same);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:" + std::to_string(r->port)),
            std::string::npos)
      << second.status().ToString();
}

TEST(Server, TheApiKeyIsRequiredWhenSet) {
  REQUIRE_SHARED();
  ServerOptions keyed;
  keyed.api_key = "s3cret";
  auto r = Start({.threads = 1, .n_ctx = 64, .parallel = 1}, keyed);
  ASSERT_TRUE(r);
  httplib::Client c("127.0.0.1", r->port);
  auto no = c.Get("/v1/models");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status, 401);
  EXPECT_EQ(json::parse(no->body)["error"]["type"], "authentication_error");
  auto wrong = c.Get("/v1/models", {{"Authorization", "Bearer s3cre"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto ok = c.Get("/v1/models", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(json::parse(ok->body)["data"][0]["id"], "stories260K");
}

// A client that goes away mid-stream frees its slot (long before its 16,384 positions
// are used); with the slot busy and no queue, a further request is refused with 503.
TEST(Server, AVanishedClientFreesItsSlotAndAFullServerSays503) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 1, .n_ctx = 16384, .parallel = 1, .max_queue = 0});
  ASSERT_TRUE(r);
  const std::string forever = json{
      {"prompt", "Once"},
      {"max_tokens", -1},
      {"ignore_eos", true},
      {"stream", true},
      {"temperature", 0}}.dump();
  auto metric = [&](const std::string& line) {
    httplib::Client c("127.0.0.1", r->port);
    auto m = c.Get("/metrics");
    return m && m->body.find(line) != std::string::npos;
  };
  std::mutex mu;
  std::condition_variable cv;
  bool streaming = false, leave = false;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", r->port);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = forever;
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      std::unique_lock<std::mutex> lock(mu);
      streaming = true;
      cv.notify_all();
      cv.wait(lock, [&] { return leave; });
      return false;  // the client goes away
    };
    c.send(req);
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return streaming; }));
  }
  httplib::Client other("127.0.0.1", r->port);
  auto refused =
      other.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(refused->body.find("slots are busy"), std::string::npos) << refused->body;
  {
    std::lock_guard<std::mutex> lock(mu);
    leave = true;
    cv.notify_all();
  }
  client.join();
  ASSERT_TRUE(WaitUntil(30, [&] { return metric("ggswarm_slots_busy 0"); }))
      << "the slot was not freed";
  httplib::Client c("127.0.0.1", r->port);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  const size_t at = m->body.find("\nggswarm_generated_tokens_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stod(m->body.substr(at + 32)), 16000);
  auto res =
      c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 3})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// A client that asked for a whole answer (no stream) and went away before it came: the
// server notices the closed connection while it waits and cancels the request, so the slot
// is free again long before the answer's 16,000 tokens would have been made.
TEST(Server, AClientThatLeavesBeforeAWholeAnswerFreesItsSlot) {
  REQUIRE_SHARED();
  auto r = Start({.threads = 1, .n_ctx = 16384, .parallel = 1, .max_queue = 0});
  ASSERT_TRUE(r);
  auto metric = [&](const std::string& line) {
    httplib::Client c("127.0.0.1", r->port);
    auto m = c.Get("/metrics");
    return m && m->body.find(line) != std::string::npos;
  };
  {
    const std::string body = json{
        {"prompt", "Once"},
        {"max_tokens", 16000},
        {"ignore_eos", true},
        {"temperature", 0}}.dump();
    httplib::Client c("127.0.0.1", r->port);
    c.set_read_timeout(0, 300000);  // gives up after 0.3 s and closes the connection
    auto res = c.Post("/v1/completions", body, "application/json");
    EXPECT_FALSE(res) << "an answer of 16,000 tokens came in 0.3 s";
  }
  httplib::Client c("127.0.0.1", r->port);
  auto generated = [&] {
    auto m = c.Get("/metrics");
    const size_t at = m ? m->body.find("\nggswarm_generated_tokens_total ") : std::string::npos;
    return at == std::string::npos ? -1.0 : std::stod(m->body.substr(at + 32));
  };
  // It ran (tokens were made) and stopped: the slot is free again.
  ASSERT_TRUE(WaitUntil(30, [&] { return generated() > 0 && metric("ggswarm_slots_busy 0"); }))
      << "the slot was not freed";
  EXPECT_LT(generated(), 16000);
  auto res =
      c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 3})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace ggswarm::api
