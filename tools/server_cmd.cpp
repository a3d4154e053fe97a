// `ggswarm server`: the OpenAI-compatible HTTP API over a local model or a swarm.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "api/open_model.h"
#include "api/server.h"
#include "commands.h"
#include "numeric_flags.h"
#include "runtime/chat.h"
#include "swarm_flags.h"

namespace ggswarm::cli {
namespace {

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true); }

struct ServerArgs {
  std::string model, chat_template, api_key, alias;
  SwarmClientFlags swarm;
  bool no_cache_prompt = false;
  api::ServerOptions http;
  runtime::ServiceOptions svc;
};

int RunServer(ServerArgs& a) {
  api::OpenOptions oo;
  oo.threads = a.svc.threads;
  a.swarm.ApplyTo(&oo);
  a.svc.cache_prompt = !a.no_cache_prompt;
  oo.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  auto svc = api::OpenService(a.model, a.svc, oo, &a.http.swarm);
  if (!svc.ok()) {
    std::fprintf(stderr, "error: %s\n", svc.status().ToString().c_str());
    return 1;
  }
  a.http.chat_template = a.chat_template;
  a.http.api_key = a.api_key;
  a.http.model_name = a.alias;
  auto srv = api::Server::Start(std::move(*svc), a.http);
  if (!srv.ok()) {
    std::fprintf(stderr, "error: %s\n", srv.status().ToString().c_str());
    return 1;
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGPIPE, SIG_IGN);
  api::Server& s = **srv;
  std::thread watcher([&] {
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s.Stop();
  });
  std::printf("serving %s (%d slots) as '%s'\nlistening on http://%s:%d\n", a.model.c_str(),
              a.svc.parallel, s.model_name().c_str(), a.http.host.c_str(), s.port());
  std::fflush(stdout);
  s.Run();
  g_stop.store(true);
  watcher.join();
  return 0;
}

}  // namespace

void AddServerCommand(CLI::App& app, int& rc) {
  auto a = std::make_shared<ServerArgs>();  // lives as long as the callback that reads it
  auto* s = app.add_subcommand("server", "Serve a model over an OpenAI-compatible HTTP API");
  s->add_option("model", a->model, "GGUF file, fragment directory or swarm://HOST:PORT/MODEL")
      ->required();
  s->add_option("--host", a->http.host, "Address to listen on (default 127.0.0.1)");
  s->add_option("--port", a->http.port, "Port (default 8080; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  s->add_option("--parallel", a->svc.parallel,
                "Sequences decoded together in one batch (default 4)")
      ->check(CLI::Range(1, 256));
  s->add_option("--ctx", a->svc.n_ctx, "Context of each sequence (default: model's, at most 4096)")
      ->check(Within(runtime::kContext));
  s->add_option("-t,--threads", a->svc.threads, "Threads (default: one per core)")
      ->check(Within(runtime::kThreads));
  s->add_option("-b,--batch-size", a->svc.n_batch,
                "Prompt tokens per chunk beside the others' decoding (default 512)")
      ->check(CLI::Range(1, 4096));
  s->add_option("--max-queue", a->svc.max_queue,
                "Requests that may wait for a slot; more get HTTP 503 (default 64)")
      ->check(CLI::Range(0, 4096));
  s->add_option("--lanes", a->svc.lanes,
                "swarm:// models: groups of sequences the stages work on in turn (default: one "
                "per stage of the chain)")
      ->check(CLI::Range(1, 256));
  s->add_flag("--no-cache-prompt", a->no_cache_prompt,
              "Forget each sequence's cache when it ends (default: a slot keeps it, and a request "
              "that begins with the same tokens skips them)");
  s->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on /v1 requests");
  s->add_option("--alias", a->alias, "The model id clients use (default: the model's name)");
  s->add_option(
      "--chat-template", a->chat_template,
      "Chat format when the model has none or to override it: " + runtime::ChatFormatNames());
  AddSwarmClientFlags(s, &a->swarm);
  s->callback([a, &rc] { rc = RunServer(*a); });
}

}  // namespace ggswarm::cli
