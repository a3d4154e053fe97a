// libFuzzer entry point for what `ggswarm server` reads from clients: the first byte picks
// an endpoint (chat, text completions, tokenize, detokenize), the rest is the request body,
// sent over HTTP to a server on 127.0.0.1 over a tiny random model (made once, in a
// temporary directory). Invariants: the server answers; 200 with a JSON body, or a 4xx/503
// with OpenAI's error object naming the problem; never a 5xx, a crash or a hang. Build with
// -DGGSWARM_FUZZ=ON and clang; tests/server_fuzz_replay_test.cpp drives it with
// deterministic mutations in every ordinary build.
#include <httplib.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "api/server.h"
#include "convert/synth.h"

namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<ggswarm::api::Server> server;
  std::thread thread;
  int port = 0;
  Fixture() {
    std::string templ = (std::filesystem::temp_directory_path() / "ggswarm-fuzz-XXXXXX").string();
    dir = ::mkdtemp(templ.data());
    const std::string model = dir + "/m.gguf";
    ggswarm::SynthOptions so{*ggswarm::FindPreset("micro"), *ggswarm::ParseTypeMix("Q8_0"), 1,
                             "fuzz"};
    if (!ggswarm::Synthesize(so, model, false).ok()) std::abort();
    auto svc = ggswarm::runtime::OpenBatchService(
        model, {.threads = 1, .n_ctx = 64, .parallel = 2, .max_queue = 4});
    if (!svc.ok()) std::abort();
    ggswarm::api::ServerOptions o;
    o.port = 0;
    o.chat_template = "chatml";
    auto s = ggswarm::api::Server::Start(std::move(*svc), o);
    if (!s.ok()) std::abort();
    server = std::move(*s);
    port = server->port();
    thread = std::thread([p = server.get()] { p->Run(); });
  }
  ~Fixture() {
    server->Stop();
    thread.join();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

void Check(bool ok, const char* what, const std::string& body) {
  if (ok) return;
  std::fprintf(stderr, "server fuzz invariant broken: %s\nbody: %.300s\n", what, body.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size == 0) return 0;
  static const char* const kPaths[] = {"/v1/chat/completions", "/v1/completions", "/tokenize",
                                       "/detokenize"};
  const char* path = kPaths[data[0] % 4];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  httplib::Client c("127.0.0.1", f.port);
  c.set_read_timeout(60, 0);
  auto res = c.Post(path, body, "application/json");
  Check(static_cast<bool>(res), "no answer", body);
  Check(res->status == 200 || (res->status >= 400 && res->status < 500) || res->status == 503,
        "a status other than 200, 4xx or 503", body);
  if (res->status != 200) {
    const auto e = nlohmann::json::parse(res->body, nullptr, false);
    Check(e.is_object() && e.contains("error") && e["error"].is_object() &&
              e["error"].contains("message") && e["error"]["message"].is_string() &&
              !e["error"]["message"].get<std::string>().empty(),
          "an error without OpenAI's error object", body);
    return 0;
  }
  if (res->get_header_value("Content-Type").find("event-stream") != std::string::npos) {
    Check(res->body.size() >= 14 &&
              res->body.compare(res->body.size() - 14, 14, "data: [DONE]\n\n") == 0,
          "a stream that does not end with [DONE]", body);
    return 0;
  }
  Check(!nlohmann::json::parse(res->body, nullptr, false).is_discarded(),
        "a 200 answer that is not JSON", body);
  auto h = c.Get("/health");
  Check(h && h->status == 200, "/health failed after a request", body);
  return 0;
}
