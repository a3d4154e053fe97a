#include "api/server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "api/swarm_view.h"
#include "base/text.h"
#include "runtime/chat.h"

namespace ggswarm::api {

using json = nlohmann::json;
using runtime::Completion;
using runtime::Outcome;
using runtime::StopReason;
using runtime::TokenEvent;

namespace {

// An error the client caused (or a busy server), as OpenAI shapes it.
struct HttpError {
  int status = 400;
  std::string message, type = "invalid_request_error", code;
};

void SendError(httplib::Response& res, const HttpError& e) {
  res.status = e.status;
  json j = {{"error", {{"message", e.message}, {"type", e.type}}}};
  j["error"]["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// Text that may not be UTF-8 (a token's bytes), with U+FFFD where it is not.
std::string Utf8(const std::string& s) {
  if (IsValidUtf8(s)) return s;
  return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace))
      .get<std::string>();
}

HttpError Bad(std::string m, std::string code = "") {
  return {400, std::move(m), "invalid_request_error", std::move(code)};
}

// Constant-time comparison of the presented key with the configured one.
bool SameKey(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % std::max<size_t>(1, b.size())];
  return diff == 0;
}

std::string RandomId(const char* prefix) {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

// A request's connection, for a handler that waits long without writing (a whole answer):
// cpp-httplib 0.11 neither hands the socket to handlers nor says when the client has gone,
// so the socket is found among this process's descriptors by its two ends (the client's
// address and port, and the server's port), and peeked at: end of stream or a reset means
// the client went away. Looked for again at every check, so that a descriptor closed and
// reused for another connection is never mistaken for this one.
class Connection {
 public:
  Connection(const httplib::Request& req, int server_port)
      : addr_(req.remote_addr), port_(req.remote_port), server_port_(server_port) {}

  // False once the client has closed the connection or reset it; true while it is open, or
  // when it cannot be told (no /proc).
  bool Open() {
    if (fd_ < 0 || !Matches(fd_)) fd_ = Find();
    if (fd_ < 0) return !searched_ok_;  // gone (the descriptor was closed) or unknowable
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return true;  // data waiting: the next request of a kept-alive connection
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }

 private:
  bool Matches(int fd) const {
    sockaddr_storage peer{}, self{};
    socklen_t pl = sizeof peer, sl = sizeof self;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &sl) != 0)
      return false;
    char host[NI_MAXHOST], port[NI_MAXSERV], sport[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&peer), pl, host, sizeof host, port, sizeof port,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        ::getnameinfo(reinterpret_cast<sockaddr*>(&self), sl, nullptr, 0, sport, sizeof sport,
                      NI_NUMERICSERV) != 0)
      return false;
    return addr_ == host && port_ == std::atoi(port) && server_port_ == std::atoi(sport);
  }
  int Find() {
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc/self/fd", ec);
    searched_ok_ = !ec;
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const int fd = std::atoi(name.c_str());
      if (fd > 2 && Matches(fd)) return fd;
    }
    return -1;
  }

  std::string addr_;
  int port_, server_port_;
  int fd_ = -1;
  bool searched_ok_ = false;
};

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Fields of the body, checked by type: a wrong type is an error naming the field.
template <typename T>
bool Field(const json& body, const char* name, T* out, HttpError* err, const char* want) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>)
    ok = it->is_boolean();
  else if constexpr (std::is_integral_v<T>)
    ok = it->is_number_integer() ||
         (it->is_number_float() && it->get<double>() == std::floor(it->get<double>()));
  else if constexpr (std::is_floating_point_v<T>)
    ok = it->is_number();
  else
    ok = it->is_string();
  if (!ok) {
    *err = Bad(std::string("'") + name + "' must be " + want, "invalid_type");
    return false;
  }
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const double v = it->get<double>();
    if (v < -2e9 || v > 2e9) {
      *err = Bad(std::string("'") + name + "' is out of range", "invalid_value");
      return false;
    }
    *out = static_cast<T>(v);
  } else {
    *out = it->get<T>();
  }
  return true;
}

// Holds back generated text that could be the start of a stop string, and ends the
// text where one appears (the stop string itself is not returned, as OpenAI does).
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds a piece; returns the text that is now safe to send. *hit: a stop string appeared.
  std::string Push(const std::string& piece, bool* hit) {
    all_ += piece;
    *hit = false;
    size_t cut = std::string::npos;
    for (const std::string& s : stops_) {
      const size_t from = sent_ > s.size() ? sent_ - s.size() : 0;
      const size_t p = all_.find(s, from);
      if (p != std::string::npos) cut = std::min(cut, p);
    }
    size_t safe = all_.size();
    if (cut != std::string::npos) {
      *hit = true;
      safe = std::max(cut, sent_);
      all_.resize(safe);
    } else {
      for (const std::string& s : stops_)
        for (size_t k = std::min(s.size() - 1, all_.size()); k > 0; --k)
          if (all_.compare(all_.size() - k, k, s, 0, k) == 0) {
            safe = std::min(safe, all_.size() - k);
            break;
          }
    }
    safe = std::max(safe, sent_);
    std::string out = all_.substr(sent_, safe - sent_);
    sent_ = safe;
    return out;
  }
  // The end: whatever was held back.
  std::string Flush() {
    std::string out = all_.substr(sent_);
    sent_ = all_.size();
    return out;
  }
  const std::string& text() const { return all_; }

 private:
  std::vector<std::string> stops_;
  std::string all_;
  size_t sent_ = 0;
};

// What a request asked for beyond the Completion: how to answer it.
struct Ask {
  bool chat = true, stream = false, include_usage = false;
  bool logprobs = false;
  int top_logprobs = 0;
  std::vector<std::string> stop;
};

// One request in flight: the service's thread pushes, the HTTP thread takes.
struct Flight {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> chunks;  // server-sent events, ready to write
  bool done = false;
  Outcome outcome;
  std::string text;
  std::vector<json> logprobs;  // per token, OpenAI's shape
  int generated = 0;
  bool stopped_by_string = false;
};

}  // namespace

struct Server::Impl {
  std::unique_ptr<runtime::Service> service;
  ServerOptions opts;
  std::string name;
  runtime::ChatFormat chat;
  Status chat_status;
  httplib::Server http;
  int port = 0;
  std::atomic<uint64_t> http_requests{0}, http_errors{0};

  // --- Requests into Completions ----------------------------------------------------------

  bool ReadSampling(const json& b, Completion* c, Ask* a, HttpError* err) {
    runtime::GenerateOptions& g = c->gen;
    g.max_tokens = -1;
    runtime::SamplerOptions& s = g.sampling;
    int n = 1;
    if (!Field(b, "n", &n, err, "an integer")) return false;
    if (n != 1) {
      *err = Bad("'n' must be 1: one choice per request is supported", "unsupported_value");
      return false;
    }
    for (const char* f :
         {"tools", "functions", "tool_choice", "function_call", "suffix", "echo", "best_of"})
      if (b.contains(f) && !b[f].is_null() && !(b[f].is_array() && b[f].empty()) &&
          !(b[f].is_boolean() && !b[f].get<bool>())) {
        *err = Bad(std::string("'") + f + "' is not supported by this server", "unsupported_field");
        return false;
      }
    if (b.contains("response_format") && b["response_format"].is_object() &&
        b["response_format"].value("type", "text") != "text") {
      *err = Bad("only response_format {\"type\": \"text\"} is supported", "unsupported_value");
      return false;
    }
    int max_tokens = -1;
    if (!Field(b, "max_tokens", &max_tokens, err, "an integer")) return false;
    if (!Field(b, "max_completion_tokens", &max_tokens, err, "an integer")) return false;
    if (max_tokens == 0 || max_tokens < -1) {
      *err = Bad("'max_tokens' must be at least 1", "invalid_value");
      return false;
    }
    g.max_tokens = max_tokens;
    if (!Field(b, "temperature", &s.temperature, err, "a number") ||
        !Field(b, "top_p", &s.top_p, err, "a number") ||
        !Field(b, "top_k", &s.top_k, err, "an integer") ||
        !Field(b, "min_p", &s.min_p, err, "a number") ||
        !Field(b, "repeat_penalty", &s.repeat_penalty, err, "a number") ||
        !Field(b, "frequency_penalty", &s.frequency_penalty, err, "a number") ||
        !Field(b, "presence_penalty", &s.presence_penalty, err, "a number") ||
        !Field(b, "ignore_eos", &g.ignore_eos, err, "true or false") ||
        !Field(b, "cache_prompt", &c->cache_prompt, err, "true or false") ||
        !Field(b, "stream", &a->stream, err, "true or false"))
      return false;
    if (auto it = b.find("logit_bias"); it != b.end() && !it->is_null()) {
      if (!it->is_object()) {
        *err = Bad("'logit_bias' must be an object of token ids and biases", "invalid_type");
        return false;
      }
      for (const auto& [key, value] : it->items()) {
        char* end = nullptr;
        const long id = std::strtol(key.c_str(), &end, 10);
        if (key.empty() || *end != '\0' || id < 0 || id > INT32_MAX || !value.is_number()) {
          *err = Bad("'logit_bias' must map token ids (\"123\") to numbers; '" + key + "' does not",
                     "invalid_value");
          return false;
        }
        s.logit_bias.push_back({static_cast<int32_t>(id), value.get<float>()});
      }
    }
    int64_t seed = -1;
    if (!Field(b, "seed", &seed, err, "an integer")) return false;
    s.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
    if (b.contains("stream_options") && b["stream_options"].is_object())
      a->include_usage = b["stream_options"].value("include_usage", false);
    if (auto it = b.find("stop"); it != b.end() && !it->is_null()) {
      if (it->is_string()) {
        a->stop.push_back(it->get<std::string>());
      } else if (it->is_array() && it->size() <= 4) {
        for (const json& s2 : *it) {
          if (!s2.is_string()) {
            *err = Bad("'stop' must be a string or an array of up to 4 strings", "invalid_type");
            return false;
          }
          a->stop.push_back(s2.get<std::string>());
        }
      } else {
        *err = Bad("'stop' must be a string or an array of up to 4 strings", "invalid_type");
        return false;
      }
      a->stop.erase(std::remove(a->stop.begin(), a->stop.end(), ""), a->stop.end());
    }
    // logprobs: a boolean with top_logprobs (chat), or the number of alternatives
    // (completions).
    if (auto it = b.find("logprobs"); it != b.end() && !it->is_null()) {
      if (a->chat) {
        if (!Field(b, "logprobs", &a->logprobs, err, "true or false")) return false;
        if (!Field(b, "top_logprobs", &a->top_logprobs, err, "an integer")) return false;
      } else {
        if (!Field(b, "logprobs", &a->top_logprobs, err, "an integer")) return false;
        a->logprobs = true;
      }
      if (a->top_logprobs < 0 || a->top_logprobs > 20) {
        *err = Bad("'top_logprobs' must be between 0 and 20", "invalid_value");
        return false;
      }
    }
    c->logprobs = a->logprobs ? a->top_logprobs : -1;
    if (Status st = runtime::CheckGenerateOptions(g); !st.ok()) {
      *err = Bad(st.message(), "invalid_value");
      return false;
    }
    return true;
  }

  // The text of a message's content: a string, or an array of text parts.
  static bool ContentText(const json& m, std::string* out, HttpError* err) {
    auto it = m.find("content");
    if (it == m.end() || it->is_null()) {
      *out = "";
      return true;
    }
    if (it->is_string()) {
      *out = it->get<std::string>();
      return true;
    }
    if (it->is_array()) {
      out->clear();
      for (const json& p : *it) {
        if (!p.is_object() || p.value("type", "") != "text" || !p.contains("text") ||
            !p["text"].is_string()) {
          *err =
              Bad("message content parts must be {\"type\": \"text\", \"text\": ...}; "
                  "images and audio are not supported",
                  "unsupported_content");
          return false;
        }
        *out += p["text"].get<std::string>();
      }
      return true;
    }
    *err = Bad("message 'content' must be a string or an array of text parts", "invalid_type");
    return false;
  }

  bool ChatPrompt(const json& b, std::string* prompt, HttpError* err) {
    auto it = b.find("messages");
    if (it == b.end() || !it->is_array() || it->empty()) {
      *err = Bad("'messages' must be a non-empty array", "invalid_messages");
      return false;
    }
    if (!chat_status.ok()) {
      *err = Bad(chat_status.message(), "no_chat_template");
      return false;
    }
    std::string system;
    std::vector<std::pair<std::string, std::string>> turns;  // role, text
    for (const json& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        *err = Bad("every message needs a 'role' string", "invalid_messages");
        return false;
      }
      const std::string role = m["role"].get<std::string>();
      std::string text;
      if (!ContentText(m, &text, err)) return false;
      if (role == "system" || role == "developer") {
        system += (system.empty() ? "" : "\n") + text;
      } else if (role == "user" || role == "assistant") {
        if (turns.empty() ? role != "user" : turns.back().first == role) {
          *err = Bad("messages must alternate user and assistant, starting with user",
                     "invalid_messages");
          return false;
        }
        turns.push_back({role, text});
      } else {
        *err = Bad("message role '" + role + "' is not supported (system, user, assistant)",
                   "invalid_messages");
        return false;
      }
    }
    if (turns.empty() || turns.back().first != "user") {
      *err = Bad("the last message must be the user's", "invalid_messages");
      return false;
    }
    *prompt = runtime::RenderFirstTurn(chat, system, turns[0].second);
    for (size_t i = 1; i + 1 < turns.size(); i += 2)
      *prompt += turns[i].second + runtime::RenderNextTurn(chat, turns[i + 1].second);
    return true;
  }

  bool ParseBody(const httplib::Request& req, json* body, HttpError* err) {
    if (!IsValidUtf8(req.body)) {
      *err = Bad("the request body is not valid UTF-8", "invalid_utf8");
      return false;
    }
    *body = json::parse(req.body, nullptr, false);
    if (body->is_discarded() || !body->is_object()) {
      *err = Bad("the request body is not a JSON object", "invalid_json");
      return false;
    }
    if (auto it = body->find("model"); it != body->end() && !it->is_null()) {
      if (!it->is_string()) {
        *err = Bad("'model' must be a string", "invalid_type");
        return false;
      }
      const std::string m = it->get<std::string>();
      if (!m.empty() && m != name) {
        *err = {404, "the model '" + m + "' does not exist; this server serves '" + name + "'",
                "invalid_request_error", "model_not_found"};
        return false;
      }
    }
    return true;
  }

  // --- Answers ----------------------------------------------------------------------------

  json LogprobsEntry(const TokenEvent& ev) {
    const auto& tok = service->tokenizer();
    auto bytes = [](const std::string& s) {
      json a = json::array();
      for (unsigned char c : s) a.push_back(c);
      return a;
    };
    const std::string piece = tok.Piece(ev.token);
    json top = json::array();
    for (const auto& t : ev.top) {
      const std::string p = tok.Piece(t.token);
      top.push_back({{"token", Utf8(p)}, {"logprob", t.logprob}, {"bytes", bytes(p)}});
    }
    return {{"token", Utf8(piece)},
            {"logprob", ev.logprob},
            {"bytes", bytes(piece)},
            {"top_logprobs", top}};
  }

  static const char* FinishReason(const Outcome& o, bool by_string) {
    if (by_string || o.stop == StopReason::kEndOfGeneration || o.stop == StopReason::kCallback)
      return "stop";
    return "length";
  }

  json Usage(const Outcome& o) {
    return {{"prompt_tokens", o.prompt_tokens},
            {"completion_tokens", o.generated},
            {"total_tokens", o.prompt_tokens + o.generated},
            {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}},
            {"timings",
             {{"queue_ms", o.queue_ms},
              {"prompt_ms", o.prompt_ms},
              {"predicted_ms", o.gen_ms},
              {"predicted_per_second", o.gen_ms > 0 ? o.generated * 1000.0 / o.gen_ms : 0.0}}}};
  }

  json Chunk(const std::string& id, int64_t created, const Ask& a, const json& delta_or_text,
             const json& finish, const json& logprobs) {
    json choice = {{"index", 0}, {"finish_reason", finish}};
    if (a.chat) {
      choice["delta"] = delta_or_text;
    } else {
      choice["text"] = delta_or_text;
    }
    choice["logprobs"] = logprobs;
    return {{"id", id},
            {"object", a.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", name},
            {"choices", json::array({choice})}};
  }

  void Complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    json b;
    HttpError err;
    Ask a;
    a.chat = chat;
    Completion c;
    std::string prompt;
    if (!ParseBody(req, &b, &err) || !ReadSampling(b, &c, &a, &err)) return SendError(res, err);
    if (chat) {
      if (!ChatPrompt(b, &prompt, &err)) return SendError(res, err);
    } else {
      auto it = b.find("prompt");
      if (it != b.end() && it->is_array() && it->size() == 1 && (*it)[0].is_string())
        prompt = (*it)[0].get<std::string>();
      else if (it != b.end() && it->is_string())
        prompt = it->get<std::string>();
      else
        return SendError(res, Bad("'prompt' must be a string", "invalid_prompt"));
      if (prompt.empty()) return SendError(res, Bad("'prompt' is empty", "invalid_prompt"));
    }
    c.prompt = service->tokenizer().Encode(prompt);
    auto fl = std::make_shared<Flight>();
    const std::string id = RandomId(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = Now();
    auto filter = std::make_shared<StopFilter>(a.stop);
    // The service's thread: text through the stop filter, into events or the whole text.
    runtime::Callbacks cb;
    cb.on_token = [this, fl, filter, a, id, created](const TokenEvent& ev) {
      bool hit = false;
      const std::string out = filter->Push(ev.text, &hit);
      std::lock_guard<std::mutex> lock(fl->mu);
      if (ev.token >= 0) ++fl->generated;
      json lp = nullptr;
      if (a.logprobs && ev.token >= 0) {
        lp = LogprobsEntry(ev);
        fl->logprobs.push_back(lp);
      }
      fl->text += out;
      if (a.stream && (!out.empty() || !lp.is_null())) {
        json delta = a.chat ? json{{"content", out}} : json(out);
        if (a.chat && fl->generated == 1) delta["role"] = "assistant";
        json lps = lp.is_null() ? json(nullptr) : json{{"content", json::array({lp})}};
        fl->chunks.push_back("data: " +
                             Chunk(id, created, a, delta, nullptr, lps)
                                 .dump(-1, ' ', false, json::error_handler_t::replace) +
                             "\n\n");
      }
      fl->cv.notify_all();
      if (hit) fl->stopped_by_string = true;
      return !hit;
    };
    cb.on_done = [this, fl, filter, a, id, created](const Outcome& o) {
      const std::string rest = o.status.ok() ? filter->Flush() : "";
      std::lock_guard<std::mutex> lock(fl->mu);
      fl->outcome = o;
      fl->text += rest;
      if (a.stream) {
        if (!o.status.ok()) {
          json e = {{"error", {{"message", o.status.ToString()}, {"type", "server_error"}}}};
          fl->chunks.push_back("data: " + e.dump(-1, ' ', false, json::error_handler_t::replace) +
                               "\n\n");
        } else {
          json delta = a.chat ? json{{"content", rest}} : json(rest);
          if (!a.chat || rest.empty()) delta = a.chat ? json::object() : json("");
          json last = Chunk(id, created, a, delta, FinishReason(o, fl->stopped_by_string), nullptr);
          if (a.include_usage) last["usage"] = Usage(o);
          fl->chunks.push_back(
              "data: " + last.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
        }
        fl->chunks.push_back("data: [DONE]\n\n");
      }
      fl->done = true;
      fl->cv.notify_all();
    };
    auto ticket = service->Submit(std::move(c), std::move(cb));
    if (!ticket.ok()) {
      if (ticket.status().code() == Status::Code::kUnavailable)
        return SendError(res, {503, ticket.status().message(), "unavailable_error", "busy"});
      return SendError(res, Bad(ticket.status().message(), "invalid_value"));
    }
    std::shared_ptr<runtime::Ticket> t = *ticket;
    if (!a.stream) {
      // A client that goes away while it waits for the whole answer cancels its request
      // (checked twice a second), as a streaming one does at its next token.
      Connection conn(req, port);
      std::unique_lock<std::mutex> lock(fl->mu);
      while (!fl->cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return fl->done; })) {
        lock.unlock();
        const bool open = conn.Open();
        lock.lock();
        if (!open) {
          t->Cancel();
          fl->cv.wait(lock, [&] { return fl->done; });
          return;  // nobody to answer
        }
      }
      const Outcome& o = fl->outcome;
      if (!o.status.ok()) {
        lock.unlock();
        return SendError(res, {500, o.status.ToString(), "server_error", "generation_failed"});
      }
      json choice = {{"index", 0}, {"finish_reason", FinishReason(o, fl->stopped_by_string)}};
      json lps = a.logprobs ? json{{"content", fl->logprobs}} : json(nullptr);
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", fl->text}};
        choice["logprobs"] = lps;
      } else {
        choice["text"] = fl->text;
        choice["logprobs"] = lps;
      }
      json r = {{"id", id},
                {"object", chat ? "chat.completion" : "text_completion"},
                {"created", created},
                {"model", name},
                {"choices", json::array({choice})},
                {"usage", Usage(o)}};
      res.set_content(r.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [fl, t](size_t, httplib::DataSink& sink) {
          std::unique_lock<std::mutex> lock(fl->mu);
          fl->cv.wait_for(lock, std::chrono::milliseconds(500),
                          [&] { return !fl->chunks.empty() || fl->done; });
          while (!fl->chunks.empty()) {
            std::string s = std::move(fl->chunks.front());
            fl->chunks.pop_front();
            lock.unlock();
            if (!sink.write(s.data(), s.size())) {
              t->Cancel();
              return false;
            }
            lock.lock();
          }
          if (fl->done) {
            lock.unlock();
            sink.done();
            return true;
          }
          lock.unlock();
          if (!sink.is_writable()) {
            t->Cancel();
            return false;
          }
          return true;
        },
        [t](bool success) {
          if (!success) t->Cancel();  // the client went away: free its slot
        });
  }

  void Routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++http_requests;
      if (opts.api_key.empty() || req.path == "/" || req.path == "/health" || req.path == "/swarm")
        return httplib::Server::HandlerResponse::Unhandled;
      const std::string auth = req.get_header_value("Authorization");
      const std::string want = "Bearer " + opts.api_key;
      if (!SameKey(auth, want)) {
        SendError(res, {401, "a valid API key is needed: send 'Authorization: Bearer KEY'",
                        "authentication_error", "invalid_api_key"});
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      ++http_errors;
      if (!res.body.empty()) return;
      if (res.status == 413)
        SendError(
            res,
            {413, "the request body is larger than " + std::to_string(opts.max_body) + " bytes",
             "invalid_request_error", "body_too_large"});
      else if (res.status == 404)
        SendError(res, {404, "no such endpoint", "invalid_request_error", "not_found"});
      else
        SendError(res, {res.status,
                        "the request could not be served (HTTP " + std::to_string(res.status) + ")",
                        res.status >= 500 ? "server_error" : "invalid_request_error", ""});
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          SendError(res, {500, "internal error", "server_error", ""});
        });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(ChatPageHtml(), "text/html; charset=utf-8");
    });
    // The swarm's picture (swarm:// models only).
    http.Get("/swarm", [this](const httplib::Request&, httplib::Response& res) {
      if (!opts.swarm)
        return SendError(res, {404, "this server serves a local model, not a swarm",
                               "invalid_request_error", "not_a_swarm"});
      res.set_content(SwarmPageHtml(), "text/html; charset=utf-8");
    });
    http.Get("/v1/swarm", [this](const httplib::Request&, httplib::Response& res) {
      if (!opts.swarm)
        return SendError(res, {404, "this server serves a local model, not a swarm",
                               "invalid_request_error", "not_a_swarm"});
      auto [status, body] = opts.swarm();
      res.status = status;
      res.set_content(body, "application/json");
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", name},
                {"object", "model"},
                {"created", Now()},
                {"owned_by", "ggswarm"},
                {"meta", {{"n_ctx", service->n_ctx()}, {"parallel", service->parallel()}}}};
      res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(
                          -1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& r) { Complete(q, r, true); });
    http.Post("/v1/completions",
              [this](const httplib::Request& q, httplib::Response& r) { Complete(q, r, false); });
    http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      json b;
      HttpError err;
      if (!ParseBody(req, &b, &err)) return SendError(res, err);
      if (!b.contains("content") || !b["content"].is_string())
        return SendError(res, Bad("'content' must be a string", "invalid_type"));
      bool add_special = false;
      if (!Field(b, "add_special", &add_special, &err, "true or false")) return SendError(res, err);
      const auto ids = service->tokenizer().Encode(b["content"].get<std::string>(), add_special);
      res.set_content(json{{"tokens", ids}}.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
    http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
      json b;
      HttpError err;
      if (!ParseBody(req, &b, &err)) return SendError(res, err);
      auto it = b.find("tokens");
      if (it == b.end() || !it->is_array())
        return SendError(res, Bad("'tokens' must be an array of token ids", "invalid_type"));
      std::vector<int32_t> ids;
      const int64_t nv = static_cast<int64_t>(service->tokenizer().vocab().size());
      for (const json& t : *it) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= nv)
          return SendError(res,
                           Bad("token ids must be integers from 0 to " + std::to_string(nv - 1),
                               "invalid_value"));
        ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
      }
      res.set_content(json{{"content", Utf8(service->tokenizer().Decode(ids))}}.dump(
                          -1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const runtime::ServiceStats s = service->Stats();
      std::string m;
      auto add = [&](const char* n, const char* type, const char* help, double v) {
        m += std::string("# HELP ggswarm_") + n + " " + help + "\n# TYPE ggswarm_" + n + " " +
             type + "\nggswarm_" + n + " " + std::to_string(v) + "\n";
      };
      add("requests_total", "counter", "Completion requests accepted.", s.requests);
      add("requests_refused_total", "counter", "Completion requests refused: queue full.",
          s.refused);
      add("http_requests_total", "counter", "HTTP requests received.", http_requests.load());
      add("prompt_tokens_total", "counter", "Prompt tokens processed.", s.prompt_tokens);
      add("generated_tokens_total", "counter", "Tokens generated.", s.generated_tokens);
      add("generated_tokens_per_second", "gauge", "Tokens generated per second, last 10 s.",
          s.tokens_per_second);
      add("queue_length", "gauge", "Requests waiting for a slot.", s.queued);
      add("slots_busy", "gauge", "Slots decoding a request.", s.busy);
      add("slots_total", "gauge", "Slots (--parallel).", s.slots);
      res.set_content(m, "text/plain; version=0.0.4");
    });
  }
};

StatusOr<std::unique_ptr<Server>> Server::Start(std::unique_ptr<runtime::Service> service,
                                                const ServerOptions& o) {
  auto s = std::unique_ptr<Server>(new Server());
  s->impl_ = std::make_unique<Impl>();
  Impl& im = *s->impl_;
  im.service = std::move(service);
  im.opts = o;
  im.name = o.model_name;
  if (im.name.empty()) im.name = im.service->header().GetString("general.name").value_or("");
  if (im.name.empty()) im.name = "model";
  auto chat = runtime::ChatFormatFor(im.service->header(), o.chat_template);
  if (!o.chat_template.empty() && !chat.ok()) return chat.status();
  if (chat.ok())
    im.chat = *chat;
  else
    im.chat_status = chat.status();
  // Every connection holds a thread while it streams: enough for every slot, the queue and
  // a few more (health checks keep being answered under load).
  const int threads = im.service->parallel() + 64 + 16;
  im.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  im.http.set_payload_max_length(o.max_body);
  im.http.set_read_timeout(o.timeout_s, 0);
  im.http.set_write_timeout(o.timeout_s, 0);
  im.http.set_keep_alive_timeout(5);
  im.Routes();
  // The listening socket: SO_REUSEADDR only (cpp-httplib's default, SO_REUSEPORT, would let a
  // second server share a port in use), and its descriptor kept, so that the accept queue can
  // be made deeper than the library's 5 after binding: a burst of clients (64 connecting at
  // once on a busy machine) otherwise overflows it and some see their connection dropped.
  int listen_fd = -1;
  im.http.set_socket_options([&listen_fd](socket_t fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });
  if (o.port == 0) {
    im.port = im.http.bind_to_any_port(o.host.c_str());
    if (im.port <= 0) return Status::IOError("cannot listen on " + o.host);
  } else {
    if (!im.http.bind_to_port(o.host.c_str(), o.port))
      return Status::IOError("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (in use, or not an address of this machine)");
    im.port = o.port;
  }
  if (listen_fd >= 0) ::listen(listen_fd, 1024);  // Linux: a second listen() sets the backlog
  return s;
}

Server::~Server() {
  if (impl_) impl_->http.stop();
}
int Server::port() const { return impl_->port; }
const std::string& Server::model_name() const { return impl_->name; }
void Server::Run() { impl_->http.listen_after_bind(); }
void Server::Stop() { impl_->http.stop(); }

}  // namespace ggswarm::api
