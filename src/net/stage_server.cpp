#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/file.h"
#include "base/thread_pool.h"
#include "fragments/fragment_source.h"
#include "fragments/manifest.h"
#include "model/llama.h"
#include "net/dht.h"
#include "net/h2_guard.h"
#include "net/stage.h"
#include "net/stage_checks.h"
#include "net/stage_tls.h"
#include "net/stage_wire.h"
#include "stage.grpc.pb.h"

namespace ggswarm::net {
namespace {

namespace pb = ggswarm::stage::v1;
using Clock = std::chrono::steady_clock;
using grpc::ServerContext;
using grpc::StatusCode;

// A client keeps a few calls in flight per connection; more only serve a flood.
constexpr int kMaxStreamsPerConnection = 32;

// A session is a sequence slot of the stage's one LayerRange; the slot's cache is freed
// (and the slot given back) when the last holder of the session lets go of it, so a call in
// flight keeps its slot even if the session is closed meanwhile.
struct Session {
  int slot = -1;
  uint64_t kv_bytes = 0;
  Clock::time_point last_used;
  bool used = false;  // a Forward has succeeded
  std::mutex mu;      // one Forward at a time per session
  // The last stage's replies to pushed steps, by position, until the client's Await takes
  // them (under Impl::mu; a few at most).
  std::map<uint32_t, pb::ForwardReply> mail;
  std::function<void(int)> release;
  ~Session() {
    if (release) release(slot);
  }
};

// One call's work for the compute thread: a Forward (one item) or a ForwardMany. Its
// sessions are locked by the calling thread until it is done.
struct Job {
  struct Item {
    Session* s;
    const pb::ForwardRequest* req;
    pb::ForwardReply* rep;
  };
  std::vector<Item> items;
  int tokens = 0;
  grpc::ServerContext* ctx = nullptr;
  grpc::Status status;
  bool done = false;
};

grpc::Status Error(StatusCode c, const std::string& m) { return grpc::Status(c, m); }

}  // namespace

struct StageServer::Impl final : public pb::Stage::Service {
  StageOptions o;
  StageLogFn log;
  std::shared_ptr<model::LlamaModel> model;
  std::string header;
  uint64_t file_size = 0;
  pb::ServedRange self;
  std::unique_ptr<ThreadPool> pool;
  // The compute thread's own: the sessions' caches (one sequence slot each), the scratch and
  // the hidden states of the batch in hand.
  std::unique_ptr<model::LayerRange> layers;
  model::MatMulScratch head_scratch;
  std::vector<float> x, hx, logits;
  std::mutex slot_mu;
  std::vector<int> free_slots;
  // Calls waiting for the compute thread, which runs all that fit as one batch.
  std::mutex queue_mu;
  std::condition_variable queue_cv, done_cv;
  std::deque<Job*> queue;
  std::thread compute;
  std::atomic<int64_t> compute_ns{0};  // spent in batches, in all
  std::atomic<float> busy{0};          // of the last sampling period

  std::condition_variable mail_cv;  // a reply arrived in a session's mail (with mu)
  std::mutex ask_mu;                // a route's unknown next stage: peers asked now
  Clock::time_point last_asked;
  std::shared_ptr<DhtNode> dht;  // with --dht
  std::thread dht_thread;
  // For the calls this stage makes (pushes, announcements): TLS with --tls-ca, or plain.
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  std::mutex stubs_mu;  // the stages pushed to, by address
  std::map<std::string, std::shared_ptr<pb::Stage::Stub>> stubs;

  std::mutex mu;  // sessions, their mail, and registry
  std::map<std::string, std::shared_ptr<Session>> sessions;
  uint64_t kv_bytes = 0;                                                          // of all sessions
  std::map<std::string, std::pair<pb::ServedRange, Clock::time_point>> registry;  // by address
  std::mt19937_64 rng{std::random_device{}()};

  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Http2Guard> guard;  // owns the listening socket, in front of `server`
  int port = 0;
  std::atomic<bool> stopping{false};
  std::thread janitor;
  std::mutex stop_mu;
  std::condition_variable stop_cv;

  void Log(const std::string& s) {
    if (log) log(s);
  }

  grpc::Status Authorize(ServerContext* ctx) {
    if (o.token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    auto it = md.find(kTokenHeader);
    std::string given = it == md.end() ? "" : std::string(it->second.data(), it->second.size());
    // Constant-time comparison: the time taken says nothing about the secret.
    unsigned diff = given.size() != o.token.size();
    for (size_t i = 0; i < o.token.size(); ++i)
      diff |= static_cast<unsigned>(o.token[i] ^ (i < given.size() ? given[i] : 0));
    if (diff) return Error(StatusCode::UNAUTHENTICATED, "this stage needs its --token");
    return grpc::Status::OK;
  }

  pb::ServedRange Self() {
    pb::ServedRange s = self;
    std::lock_guard<std::mutex> l(mu);
    s.set_sessions_free(static_cast<uint32_t>(
        std::max<int>(0, o.max_sessions - static_cast<int>(sessions.size()))));
    s.set_open_sessions(static_cast<uint32_t>(sessions.size()));
    s.set_busy(busy.load());
    return s;
  }

  void Remember(const pb::ServedRange& r) {
    if (r.address() == self.address() || !UsableRange(r)) return;  // not a range: ignored
    std::lock_guard<std::mutex> l(mu);
    if (registry.size() >= 4096 && !registry.count(r.address())) return;
    registry[r.address()] = {r, Clock::now()};
  }

  std::vector<pb::ServedRange> Known(const std::string& model) {
    std::vector<pb::ServedRange> v;
    auto matches = [&](const pb::ServedRange& r) {
      return model.empty() || r.model_name() == model || r.model_id() == model ||
             (model.size() >= 8 && r.model_id().rfind(model, 0) == 0);
    };
    pb::ServedRange me = Self();
    if (matches(me)) v.push_back(me);
    const auto expiry = std::chrono::duration<double>(3 * o.announce_every_s + 1);
    std::lock_guard<std::mutex> l(mu);
    for (auto it = registry.begin(); it != registry.end();) {
      if (Clock::now() - it->second.second > expiry) {
        it = registry.erase(it);
        continue;
      }
      if (matches(it->second.first)) v.push_back(it->second.first);
      ++it;
    }
    return v;
  }

  grpc::Status Hello(ServerContext* ctx, const pb::HelloRequest* req,
                     pb::HelloReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    if (req->version() != kStageProtocolVersion)
      return Error(StatusCode::FAILED_PRECONDITION,
                   "protocol version " + std::to_string(req->version()) + " is not " +
                       std::to_string(kStageProtocolVersion));
    rep->set_version(kStageProtocolVersion);
    rep->set_software("ggswarm 0.1");
    *rep->mutable_served() = Self();
    return grpc::Status::OK;
  }

  grpc::Status Announce(ServerContext* ctx, const pb::AnnounceRequest* req,
                        pb::AnnounceReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    if (req->ranges_size() > 4096) return Error(StatusCode::INVALID_ARGUMENT, "too many ranges");
    for (const auto& r : req->ranges()) Remember(r);
    for (const auto& r : Known("")) *rep->add_known() = r;
    return grpc::Status::OK;
  }

  grpc::Status Lookup(ServerContext* ctx, const pb::LookupRequest* req,
                      pb::LookupReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    for (const auto& r : Known(req->model())) *rep->add_ranges() = r;
    return grpc::Status::OK;
  }

  grpc::Status Header(ServerContext* ctx, const pb::HeaderRequest*, pb::HeaderReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    rep->set_gguf_header(header);
    rep->set_file_size(file_size);
    return grpc::Status::OK;
  }

  grpc::Status OpenSession(ServerContext* ctx, const pb::OpenSessionRequest* req,
                           pb::OpenSessionReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    int n_ctx = 0;
    if (auto st = CheckOpenSession(*req, self.max_ctx(), &n_ctx); !st.ok()) return st;
    std::string id;
    // K and V in f16 for each of this stage's layers and each position (of a window).
    const uint64_t kv = model::LayerRange::KvBytes(model->config(), o.first_layer, o.end_layer,
                                                   n_ctx, layers->max_run());
    {
      std::lock_guard<std::mutex> l(mu);
      if (static_cast<int>(sessions.size()) >= o.max_sessions)
        return Error(StatusCode::RESOURCE_EXHAUSTED,
                     "this stage is full: " + std::to_string(sessions.size()) +
                         " sessions open, --max-sessions " + std::to_string(o.max_sessions));
      if (o.max_kv_bytes > 0 && kv_bytes + kv > o.max_kv_bytes)
        return Error(StatusCode::RESOURCE_EXHAUSTED,
                     "this stage's KV memory is full: " + std::to_string(kv_bytes >> 20) +
                         " MiB in use, a session of " + std::to_string(n_ctx) +
                         " positions needs " + std::to_string(kv >> 20) +
                         " MiB more, --max-kv-mb " + std::to_string(o.max_kv_bytes >> 20));
      kv_bytes += kv;
      char buf[33];
      std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                    static_cast<unsigned long long>(rng()));
      id = buf;
      auto s = std::make_shared<Session>();
      s->kv_bytes = kv;
      {
        std::lock_guard<std::mutex> sl(slot_mu);
        s->slot = free_slots.back();  // there is one: a slot per session of max_sessions
        free_slots.pop_back();
        layers->Reserve(s->slot, n_ctx);
      }
      s->release = [this](int slot) {
        std::lock_guard<std::mutex> sl(slot_mu);
        layers->Reserve(slot, 0);
        free_slots.push_back(slot);
      };
      s->last_used = Clock::now();
      sessions[id] = s;
    }
    Log("session " + id.substr(0, 8) + " opened: " + std::to_string(n_ctx) + " positions");
    rep->set_session_id(id);
    rep->set_n_ctx(static_cast<uint32_t>(n_ctx));
    rep->set_idle_timeout_s(static_cast<uint32_t>(o.idle_timeout_s));
    return grpc::Status::OK;
  }

  grpc::Status CloseSession(ServerContext* ctx, const pb::CloseSessionRequest* req,
                            pb::CloseSessionReply*) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    std::lock_guard<std::mutex> l(mu);
    auto it = sessions.find(req->session_id());
    if (it == sessions.end())
      return Error(StatusCode::NOT_FOUND, "no session " + req->session_id().substr(0, 64));
    kv_bytes -= it->second->kv_bytes;
    sessions.erase(it);
    return grpc::Status::OK;
  }

  std::shared_ptr<Session> Find(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    auto it = sessions.find(id);
    if (it == sessions.end()) return nullptr;
    it->second->last_used = Clock::now();
    return it->second;
  }

  grpc::Status NoSession(const std::string& id) {
    return Error(StatusCode::NOT_FOUND,
                 "no session " + id.substr(0, 64) + " (closed, expired, or this stage restarted)");
  }

  grpc::Status Forward(ServerContext* ctx, const pb::ForwardRequest* req,
                       pb::ForwardReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    std::shared_ptr<Session> s = Find(req->session_id());
    if (!s) return NoSession(req->session_id());
    // Everything about the message is checked before anything is allocated.
    if (auto st = CheckForwardShape(*req, self, o.max_batch); !st.ok()) return st;
    if (auto st = CheckRoute(*req, 1, self); !st.ok()) return st;
    if (auto st = CheckNextStage(*req); !st.ok()) return st;
    std::lock_guard<std::mutex> session_lock(s->mu);
    if (auto st = CheckForwardPosition(*req, layers->n_past(s->slot), layers->n_ctx(s->slot),
                                       layers->KeptFrom(s->slot));
        !st.ok())
      return st;
    Job job;
    job.items.push_back({s.get(), req, rep});
    job.tokens = static_cast<int>(req->n());
    if (auto st = Run(ctx, &job); !st.ok()) return st;
    return Deliver(ctx, *req, job);
  }

  grpc::Status ForwardMany(ServerContext* ctx, const pb::ForwardManyRequest* req,
                           pb::ForwardManyReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    if (auto st = CheckForwardMany(*req, self, o.max_batch, o.max_sessions); !st.ok()) return st;
    if (auto st = CheckNextStage(req->items(0)); !st.ok()) return st;
    std::vector<std::shared_ptr<Session>> held;
    for (const pb::ForwardRequest& f : req->items()) {
      held.push_back(Find(f.session_id()));
      if (!held.back()) return NoSession(f.session_id());
    }
    // The sessions are locked in one order (their slots'), so two calls naming the same
    // sessions cannot wait for each other.
    std::vector<Session*> order;
    for (const auto& h : held) order.push_back(h.get());
    std::sort(order.begin(), order.end(), [](Session* a, Session* b) { return a->slot < b->slot; });
    std::vector<std::unique_lock<std::mutex>> locks;
    for (Session* h : order) locks.emplace_back(h->mu);
    Job job;
    for (int i = 0; i < req->items_size(); ++i) {
      const pb::ForwardRequest& f = req->items(i);
      Session* h = held[i].get();
      if (auto st = CheckForwardPosition(f, layers->n_past(h->slot), layers->n_ctx(h->slot),
                                         layers->KeptFrom(h->slot));
          !st.ok())
        return Error(st.error_code(), "item " + std::to_string(i) + ": " + st.error_message());
      job.items.push_back({h, &f, rep->add_items()});
      job.tokens += static_cast<int>(f.n());
    }
    if (auto st = Run(ctx, &job); !st.ok()) return st;
    return Deliver(ctx, req->items(0), job);
  }

  // A route's next stage must serve the layers after this stage's own, of the same model,
  // as this stage has heard from its peers: a stage pushes only to stages, and a client
  // cannot make it contact any other address. One it has not heard of yet (announcements
  // take a few seconds to go round) makes it ask its peers now, at most once a second.
  grpc::Status CheckNextStage(const pb::ForwardRequest& first) {
    if (first.route().empty()) return grpc::Status::OK;
    const std::string& a = first.route(0).address();
    auto known = [&] {
      std::lock_guard<std::mutex> l(mu);
      auto it = registry.find(a);
      return it != registry.end() && it->second.first.model_id() == self.model_id() &&
             it->second.first.first_layer() == self.end_layer();
    };
    if (known()) return grpc::Status::OK;
    {
      std::lock_guard<std::mutex> l(ask_mu);
      if (Clock::now() - last_asked > std::chrono::seconds(1)) {
        AnnounceToPeers();
        if (!known()) FindNextOnDht();
        last_asked = Clock::now();
      }
    }
    if (known()) return grpc::Status::OK;
    return Error(StatusCode::FAILED_PRECONDITION,
                 "the route's next stage " + a.substr(0, 64) +
                     " is not one this stage knows to serve layers from " +
                     std::to_string(self.end_layer()) + " of its model");
  }

  // After a step: a pushed call goes on to the next stage; the last stage of a pushed call
  // keeps its replies for the client's Await and answers with the positions only.
  grpc::Status Deliver(ServerContext* ctx, const pb::ForwardRequest& first, Job& job) {
    if (first.to_await()) {
      {
        std::lock_guard<std::mutex> l(mu);
        for (const Job::Item& it : job.items) {
          auto& box = it.s->mail;
          box[it.req->position()] = std::move(*it.rep);
          while (box.size() > 4) box.erase(box.begin());  // replies nobody awaited
          it.rep->Clear();
          it.rep->set_n(it.req->n());
        }
      }
      mail_cv.notify_all();
      return grpc::Status::OK;
    }
    if (first.route().empty()) return grpc::Status::OK;
    const pb::Hop& next = first.route(0);
    std::vector<pb::ForwardRequest> reqs(job.items.size());
    for (size_t i = 0; i < job.items.size(); ++i) {
      const Job::Item& it = job.items[i];
      pb::ForwardRequest& f = reqs[i];
      f.set_session_id(next.session_ids(static_cast<int>(i)));
      f.set_position(it.req->position());
      f.set_n(it.req->n());
      f.set_hidden(std::move(*it.rep->mutable_hidden()));
      f.set_format(it.rep->format());
      f.set_reply_format(it.req->reply_format());
      f.set_all_logits(it.req->all_logits());
      it.rep->clear_hidden();
    }
    for (int h = 1; h < first.route_size(); ++h) *reqs[0].add_route() = first.route(h);
    for (pb::ForwardRequest& f : reqs) f.set_to_await(first.route_size() == 1);
    // A little less time than the caller gave, so that a stage that stops answering is
    // named by this one before the caller's own deadline runs out.
    grpc::ClientContext c;
    const auto now = std::chrono::system_clock::now();
    const auto left = std::min<std::chrono::system_clock::duration>(ctx->deadline() - now,
                                                                    std::chrono::minutes(10));
    c.set_deadline(now + left * 9 / 10);
    const auto& md = ctx->client_metadata();
    if (auto t = md.find(kTokenHeader); t != md.end())
      c.AddMetadata(kTokenHeader, std::string(t->second.data(), t->second.size()));
    auto stub = StubFor(next.address());
    grpc::Status st;
    if (reqs.size() == 1) {
      pb::ForwardReply r;
      st = stub->Forward(&c, reqs[0], &r);
    } else {
      pb::ForwardManyRequest m;
      for (pb::ForwardRequest& r : reqs) *m.add_items() = std::move(r);
      pb::ForwardManyReply r;
      st = stub->ForwardMany(&c, m, &r);
    }
    if (st.ok()) return grpc::Status::OK;
    std::string failed_at = next.address();
    const auto& trailing = c.GetServerTrailingMetadata();
    if (auto t = trailing.find(kFailedAtHeader); t != trailing.end())
      failed_at = std::string(t->second.data(), t->second.size());
    ctx->AddTrailingMetadata(kFailedAtHeader, failed_at);
    return Error(st.error_code(),
                 "pushing to the stage at " + next.address() + ": " + st.error_message());
  }

  std::shared_ptr<pb::Stage::Stub> StubFor(const std::string& address) {
    std::lock_guard<std::mutex> l(stubs_mu);
    auto& s = stubs[address];
    if (!s) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(INT32_MAX);
      args.SetMaxSendMessageSize(INT32_MAX);
      SetKeepalive(&args);  // a next stage that stops answering is named to the client early
      s = pb::Stage::NewStub(grpc::CreateCustomChannel(address, creds, args));
    }
    return s;
  }

  grpc::Status Await(ServerContext* ctx, const pb::AwaitRequest* req,
                     pb::ForwardManyReply* rep) override {
    if (auto st = Authorize(ctx); !st.ok()) return st;
    const int n = req->session_ids_size();
    if (n < 1 || n > o.max_sessions || req->positions_size() != n)
      return Error(StatusCode::INVALID_ARGUMENT, "an Await names 1 to " +
                                                     std::to_string(o.max_sessions) +
                                                     " sessions, each with a position");
    std::vector<std::shared_ptr<Session>> held;
    for (const std::string& id : req->session_ids()) {
      held.push_back(Find(id));
      if (!held.back()) return NoSession(id);
    }
    const auto deadline = ctx->deadline();
    std::unique_lock<std::mutex> l(mu);
    for (int i = 0; i < n; ++i) {
      auto& box = held[i]->mail;
      const uint32_t pos = req->positions(i);
      while (!box.count(pos)) {
        if (ctx->IsCancelled() || stopping) return Error(StatusCode::CANCELLED, "cancelled");
        if (std::chrono::system_clock::now() >= deadline)
          return Error(StatusCode::DEADLINE_EXCEEDED, "no reply arrived in time");
        mail_cv.wait_for(l, std::chrono::milliseconds(50));
      }
      *rep->add_items() = std::move(box[pos]);
      box.erase(pos);
    }
    return grpc::Status::OK;
  }

  // Hands the job to the compute thread and waits until it is done.
  grpc::Status Run(ServerContext* ctx, Job* job) {
    if (ctx->IsCancelled()) return Error(StatusCode::CANCELLED, "cancelled");
    job->ctx = ctx;
    std::unique_lock<std::mutex> l(queue_mu);
    if (stopping) return Error(StatusCode::UNAVAILABLE, "this stage is stopping");
    queue.push_back(job);
    queue_cv.notify_one();
    done_cv.wait(l, [&] { return job->done; });
    if (!job->status.ok()) return job->status;
    std::lock_guard<std::mutex> ml(mu);
    for (const Job::Item& it : job->items) {
      it.s->last_used = Clock::now();
      it.s->used = true;
    }
    return grpc::Status::OK;
  }

  // The compute thread: takes every waiting call that fits into one batch (max_batch
  // positions; a call's sessions are its own, locked by its caller), runs it, wakes them.
  void Compute() {
    std::vector<Job*> batch;
    for (;;) {
      std::unique_lock<std::mutex> l(queue_mu);
      queue_cv.wait(l, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, and nothing left to answer
      batch.clear();
      int tokens = 0;
      for (auto it = queue.begin(); it != queue.end();) {
        Job* j = *it;
        if (j->ctx->IsCancelled()) {  // not started for a caller that is gone
          j->status = Error(StatusCode::CANCELLED, "cancelled");
          j->done = true;
          it = queue.erase(it);
        } else if (batch.empty() || tokens + j->tokens <= o.max_batch) {
          batch.push_back(j);
          tokens += j->tokens;
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      l.unlock();
      const auto t0 = Clock::now();
      if (!batch.empty()) {
        const grpc::Status st = RunBatch(batch);
        for (Job* j : batch) j->status = st;
      }
      compute_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
      l.lock();
      for (Job* j : batch) j->done = true;
      done_cv.notify_all();
    }
  }

  // One step for the items of `batch`: single positions first (their products shared), then
  // longer runs, each in a run of its own, so every item's result is the one it gets alone.
  grpc::Status RunBatch(const std::vector<Job*>& batch) {
    std::vector<const Job::Item*> items;
    for (Job* j : batch)
      for (const Job::Item& it : j->items)
        if (it.req->n() == 1) items.push_back(&it);
    for (Job* j : batch)
      for (const Job::Item& it : j->items)
        if (it.req->n() != 1) items.push_back(&it);
    const int d = static_cast<int>(self.n_embd());
    std::vector<model::SeqRun> runs;
    std::vector<int32_t> tokens;
    int total = 0;
    for (const Job::Item* it : items) {
      layers->Truncate(static_cast<int>(it->req->position()), it->s->slot);
      runs.push_back({it->s->slot, static_cast<int>(it->req->n())});
      total += static_cast<int>(it->req->n());
    }
    x.resize(static_cast<size_t>(total) * d);
    if (self.has_embedding()) {
      for (const Job::Item* it : items)
        tokens.insert(tokens.end(), it->req->tokens().begin(), it->req->tokens().end());
      if (Status st = model->Embed(tokens, x.data()); !st.ok())
        return Error(StatusCode::INTERNAL, st.message());
    } else {
      size_t off = 0;
      for (const Job::Item* it : items) {
        const size_t count = static_cast<size_t>(it->req->n()) * d;
        FromWire(it->req->hidden(), it->req->format(), x.data() + off, count);
        off += count;
      }
    }
    if (Status st = layers->ForwardBatch(x.data(), runs, *pool); !st.ok())
      return Error(StatusCode::INTERNAL, st.message());
    if (o.perturb_for_tests != 0) Perturb(x.data(), x.size() / d, d);
    size_t off = 0;                                              // the item's first row in x
    std::vector<std::pair<const Job::Item*, size_t>> last_rows;  // items wanting one row
    for (const Job::Item* it : items) {
      const int n = static_cast<int>(it->req->n());
      it->rep->set_n(static_cast<uint32_t>(n));
      if (!self.has_head()) {
        it->rep->set_hidden(
            ToWire(x.data() + off * d, static_cast<size_t>(n) * d, it->req->reply_format()));
        it->rep->set_format(it->req->reply_format());
      } else if (it->req->all_logits()) {
        if (grpc::Status st = HeadRows(x.data() + off * d, n, it->rep); !st.ok()) return st;
      } else {
        last_rows.push_back({it, off + n - 1});
      }
      off += static_cast<size_t>(n);
    }
    // The last rows of the others together, as many as the row dots take at once.
    for (size_t i = 0; i < last_rows.size(); i += model::kRowDotMaxTokens) {
      const size_t m = std::min<size_t>(model::kRowDotMaxTokens, last_rows.size() - i);
      hx.resize(m * d);
      for (size_t r = 0; r < m; ++r)
        std::memcpy(hx.data() + r * d, x.data() + last_rows[i + r].second * d, d * sizeof(float));
      logits.resize(m * self.n_vocab());
      if (Status st =
              model->Head(hx.data(), static_cast<int>(m), logits.data(), *pool, &head_scratch);
          !st.ok())
        return Error(StatusCode::INTERNAL, st.message());
      for (size_t r = 0; r < m; ++r)
        last_rows[i + r].first->rep->set_logits(
            ToWire(logits.data() + r * self.n_vocab(), self.n_vocab(), pb::F32));
    }
    return grpc::Status::OK;
  }

  // A dishonest stage, for tests: ± perturb_for_tests of each row's RMS on every element.
  void Perturb(float* rows, size_t n, size_t d) const {
    for (size_t r = 0; r < n; ++r) {
      float* v = rows + r * d;
      double ss = 0;
      for (size_t i = 0; i < d; ++i) ss += static_cast<double>(v[i]) * v[i];
      const float delta = o.perturb_for_tests * static_cast<float>(std::sqrt(ss / d));
      for (size_t i = 0; i < d; ++i) v[i] += (i % 2 ? delta : -delta);
    }
  }

  grpc::Status HeadRows(const float* from, int rows, pb::ForwardReply* rep) {
    logits.resize(static_cast<size_t>(rows) * self.n_vocab());
    if (Status st = model->Head(from, rows, logits.data(), *pool, &head_scratch); !st.ok())
      return Error(StatusCode::INTERNAL, st.message());
    rep->set_logits(ToWire(logits.data(), logits.size(), pb::F32));
    return grpc::Status::OK;
  }

  // Closes idle sessions and announces this stage to its peers, until stopped.
  void Janitor() {
    auto next_announce = Clock::now();
    auto next_trim = Clock::now();
    auto sampled = Clock::now();
    int64_t sampled_ns = 0;
    while (!stopping) {
      if (Clock::now() - sampled >= std::chrono::seconds(2)) {  // the load of the last period
        const int64_t ns = compute_ns.load();
        const double wall =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sampled).count();
        busy = static_cast<float>(std::min(1.0, (ns - sampled_ns) / wall));
        sampled = Clock::now();
        sampled_ns = ns;
      }
      {
        std::lock_guard<std::mutex> l(mu);
        for (auto it = sessions.begin(); it != sessions.end();) {
          const double timeout =
              it->second->used ? o.idle_timeout_s : std::min(o.idle_timeout_s, o.unused_timeout_s);
          if (Clock::now() - it->second->last_used > std::chrono::duration<double>(timeout)) {
            Log("session " + it->first.substr(0, 8) + (it->second->used ? " idle" : " unused") +
                " for " + std::to_string(static_cast<int>(timeout)) + " s: closed");
            kv_bytes -= it->second->kv_bytes;
            it = sessions.erase(it);
          } else {
            ++it;
          }
        }
      }
      if (Clock::now() >= next_trim) {
        // What a burst of connections freed goes back to the system: glibc keeps freed memory
        // in its per-thread arenas (8 per core, one per gRPC thread here), so without this a
        // stage on a many-core machine stayed 50 MB larger after a flood it had fended off.
        malloc_trim(0);
        next_trim = Clock::now() + std::chrono::seconds(5);
      }
      if (Clock::now() >= next_announce) {
        AnnounceToPeers();
        next_announce = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.announce_every_s));
      }
      std::unique_lock<std::mutex> l(stop_mu);
      stop_cv.wait_for(l, std::chrono::milliseconds(200), [&] { return stopping.load(); });
    }
  }

  // With --dht: announces this stage under the model's key and its first layer's, soon after
  // it starts (the DHT may still be forming) and then every dht_every_s; looks for the stages
  // after it each time.
  void DhtLoop() {
    // Soon after it starts (the first node of a DHT waits to be joined), then every
    // dht_every_s.
    const double soon[] = {0, 1, 3, 10, 30};
    // The port others reach this stage at (--advertise's); the DHT nodes take the host from
    // where the announcement comes from.
    const std::string& a = self.address();
    const int at = std::atoi(a.substr(a.rfind(':') + 1).c_str());
    const auto start = Clock::now();
    for (int round = 0; !stopping; ++round) {
      dht->Announce(ModelKey(self.model_id()), at);
      dht->Announce(LayerKey(self.model_id(), static_cast<int>(self.first_layer())), at);
      FindNextOnDht();
      const auto next = round + 1 < 5
                            ? start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(soon[round + 1]))
                            : Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(o.dht_every_s));
      std::unique_lock<std::mutex> l(stop_mu);
      stop_cv.wait_until(l, next, [&] { return stopping.load(); });
    }
  }

  // The stages the DHT knows to start at this stage's end layer, each asked what it serves:
  // those that answer Hello with this model and that layer are remembered as peers.
  void FindNextOnDht() {
    if (!dht || self.has_head()) return;
    const DhtKey key = LayerKey(self.model_id(), static_cast<int>(self.end_layer()));
    const std::vector<Endpoint> found = dht->GetPeers(std::span<const DhtKey>(&key, 1))[0];
    for (const Endpoint& e : found) {
      if (stopping) return;
      const std::string a = e.ToString();
      if (a == self.address()) continue;
      auto stub = pb::Stage::NewStub(grpc::CreateChannel(a, creds));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      if (!o.token.empty()) ctx.AddMetadata(kTokenHeader, o.token);
      pb::HelloRequest req;
      req.set_version(kStageProtocolVersion);
      pb::HelloReply rep;
      if (!stub->Hello(&ctx, req, &rep).ok()) continue;
      pb::ServedRange r = rep.served();
      if (r.model_id() != self.model_id() || r.first_layer() != self.end_layer()) continue;
      r.set_address(a);  // where it answered, whatever it calls itself
      Remember(r);
    }
  }

  void AnnounceToPeers() {
    std::vector<std::string> targets = o.peers;
    {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& [addr, r] : registry) targets.push_back(addr);
    }
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    pb::AnnounceRequest req;
    for (const auto& r : Known("")) *req.add_ranges() = r;
    for (const std::string& t : targets) {
      if (t == self.address()) continue;
      auto stub = pb::Stage::NewStub(grpc::CreateChannel(t, creds));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      if (!o.token.empty()) ctx.AddMetadata(kTokenHeader, o.token);
      pb::AnnounceReply rep;
      if (stub->Announce(&ctx, req, &rep).ok()) {
        for (const auto& r : rep.known()) Remember(r);
      }
    }
  }
};

StatusOr<std::unique_ptr<StageServer>> StageServer::Start(const StageOptions& o, StageLogFn log) {
  auto impl = std::make_unique<Impl>();
  impl->o = o;
  impl->log = std::move(log);
  auto src = fragments::OpenModel(o.model_path);
  if (!src.ok()) return src.status();
  std::shared_ptr<TensorSource> source = std::move(*src);
  auto m = model::LlamaModel::Load(source);
  if (!m.ok()) return m.status().WithContext(o.model_path);
  impl->model = std::move(*m);
  const model::LlamaConfig& c = impl->model->config();
  StageOptions& so = impl->o;
  if (so.end_layer == 0) so.end_layer = c.n_layer;
  if (so.first_layer < 0 || so.first_layer >= so.end_layer || so.end_layer > c.n_layer)
    return Status::InvalidArgument(
        "layers " + std::to_string(so.first_layer) + "-" + std::to_string(so.end_layer - 1) +
        " are not in " + o.model_path + ", which has layers 0-" + std::to_string(c.n_layer - 1));
  if (so.max_sessions < 1 || so.max_batch < 1)
    return Status::InvalidArgument("--max-sessions and the batch size must be at least 1");
  const int max_ctx = model::ContextFor(so.max_ctx, c.n_ctx_train);
  if (max_ctx > model::kMaxContext) return Status::InvalidArgument("--ctx is too large");
  // Map (and from fragments, check) this stage's weights now: only this stage's.
  for (int l = so.first_layer; l < so.end_layer; ++l) {
    auto w = impl->model->Layer(l);
    if (!w.ok()) return w.status().WithContext(o.model_path);
  }
  const bool first = so.first_layer == 0, last = so.end_layer == c.n_layer;
  impl->pool = std::make_unique<ThreadPool>(so.threads);
  impl->layers = std::make_unique<model::LayerRange>(impl->model, so.first_layer, so.end_layer, 0,
                                                     so.max_sessions, so.max_batch);
  for (int slot = so.max_sessions; slot-- > 0;) impl->free_slots.push_back(slot);
  std::vector<float> probe(static_cast<size_t>(c.n_embd));
  if (first) {
    std::vector<int32_t> tok0{0};
    GGSWARM_RETURN_IF_ERROR(impl->model->Embed(tok0, probe.data()).WithContext(o.model_path));
  }
  if (last) {
    std::vector<float> logits(static_cast<size_t>(c.n_vocab));
    GGSWARM_RETURN_IF_ERROR(
        impl->model->Head(probe.data(), 1, logits.data(), *impl->pool, &impl->head_scratch)
            .WithContext(o.model_path));
  }
  auto id = fragments::OriginalSha256(o.model_path);
  if (!id.ok()) return id.status();
  auto header = fragments::OriginalHeader(o.model_path, source->header().data_offset);
  if (!header.ok()) return header.status();
  impl->header = std::move(*header);
  impl->file_size = source->header().file_size;

  // gRPC gets its connections from the guard (h2_guard.h), never from a port of its own.
  grpc::ServerBuilder b;
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection);
  AcceptKeepalive(&b);
  // The largest message: a full batch of hidden states in, or of logits out.
  const size_t biggest =
      static_cast<size_t>(so.max_batch) *
          std::max<size_t>(static_cast<size_t>(c.n_embd), static_cast<size_t>(c.n_vocab)) * 4 +
      (1u << 20);
  b.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(biggest, INT32_MAX)));
  b.SetMaxSendMessageSize(
      static_cast<int>(std::min<size_t>(biggest + impl->header.size(), INT32_MAX)));
  b.RegisterService(impl.get());
  impl->server = b.BuildAndStart();
  if (!impl->server) return Status::IOError("gRPC could not start a server");
  grpc::Server* grpc_server = impl->server.get();
  Impl* logger = impl.get();
  if (o.tls_cert.empty() != o.tls_key.empty())
    return Status::InvalidArgument("--tls-cert and --tls-key go together");
  auto ca = ReadTlsCa(o.tls_ca);
  if (!ca.ok()) return ca.status();
  if (!ca->empty()) impl->creds = TlsCredentials(*ca);
  auto guard = Http2Guard::Start(
      so.listen, Http2Limits{},
      [grpc_server](int fd) { grpc::AddInsecureChannelFromFd(grpc_server, fd); },
      [logger](const std::string& s) { logger->Log(s); }, GuardTls{o.tls_cert, o.tls_key});
  if (!guard.ok()) return guard.status();
  impl->guard = std::move(*guard);
  impl->port = impl->guard->port();
  if (o.dht) {
    auto node = DhtNode::Start(DhtOptions{o.dht_listen, o.dht_bootstrap});
    if (!node.ok()) return node.status();
    impl->dht = std::move(*node);
  }

  pb::ServedRange& s = impl->self;
  s.set_model_id(*id);
  s.set_model_name(source->header().GetString("general.name").value_or(""));
  s.set_first_layer(static_cast<uint32_t>(so.first_layer));
  s.set_end_layer(static_cast<uint32_t>(so.end_layer));
  s.set_n_layer(static_cast<uint32_t>(c.n_layer));
  s.set_has_embedding(first);
  s.set_has_head(last);
  const std::string host = so.listen.substr(0, so.listen.rfind(':'));
  s.set_address(!so.advertise.empty() ? so.advertise : host + ":" + std::to_string(impl->port));
  s.set_n_embd(static_cast<uint32_t>(c.n_embd));
  s.set_n_vocab(static_cast<uint32_t>(c.n_vocab));
  s.set_max_ctx(static_cast<uint32_t>(max_ctx));
  s.set_max_batch(static_cast<uint32_t>(so.max_batch));
  s.set_max_sessions(static_cast<uint32_t>(so.max_sessions));
  s.set_kernels(model::KernelsInUse());

  auto server = std::unique_ptr<StageServer>(new StageServer());
  Impl* raw = impl.get();
  server->impl_ = std::move(impl);
  raw->janitor = std::thread([raw] { raw->Janitor(); });
  raw->compute = std::thread([raw] { raw->Compute(); });
  if (raw->dht) raw->dht_thread = std::thread([raw] { raw->DhtLoop(); });
  return server;
}

StageServer::~StageServer() {
  if (impl_) Shutdown();
}

int StageServer::port() const { return impl_->port; }

std::string StageServer::Describe() const {
  const auto& s = impl_->self;
  return (s.model_name().empty() ? s.model_id().substr(0, 16) : s.model_name()) + " layers " +
         std::to_string(s.first_layer()) + "-" + std::to_string(s.end_layer() - 1) + " of " +
         std::to_string(s.n_layer()) + (s.has_embedding() ? " + embedding" : "") +
         (s.has_head() ? " + head" : "") + " at " + s.address() + " (model " +
         s.model_id().substr(0, 16) + ")";
}

const std::string& StageServer::model_id() const { return impl_->self.model_id(); }

std::string StageServer::dht_address() const { return impl_->dht ? impl_->dht->address() : ""; }

void StageServer::Wait() { impl_->server->Wait(); }

void StageServer::Shutdown() {
  {
    std::lock_guard<std::mutex> l(impl_->queue_mu);  // a caller between its check and its wait
    if (impl_->stopping.exchange(true)) return;
  }
  impl_->stop_cv.notify_all();
  impl_->queue_cv.notify_all();  // the compute thread answers what waits, then ends
  impl_->guard.reset();          // no new connections, and the open ones closed
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  if (impl_->janitor.joinable()) impl_->janitor.join();
  if (impl_->compute.joinable()) impl_->compute.join();
  if (impl_->dht_thread.joinable()) impl_->dht_thread.join();
}

}  // namespace ggswarm::net
