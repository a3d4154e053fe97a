#include "net/stage_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "base/file.h"
#include "gguf/gguf_file.h"
#include "model/config.h"
#include "net/chain_plan.h"
#include "net/chain_verify.h"
#include "net/dht.h"
#include "net/stage_directory.h"
#include "net/stage_hello.h"
#include "net/stage_tls.h"
#include "net/stage_wire.h"
#include "stage.grpc.pb.h"

namespace ggswarm::net {
namespace {

namespace pb = ggswarm::stage::v1;
using Clock = std::chrono::steady_clock;

std::string RangeText(const pb::ServedRange& r) {
  return std::to_string(r.first_layer()) + "-" + std::to_string(r.end_layer() - 1);
}

// A stage that stopped answering (or lost our session) is worth replacing; one that refused
// the request would refuse it again.
bool Recoverable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

struct Link {
  pb::ServedRange range;
  std::unique_ptr<pb::Stage::Stub> stub;
  // One per sequence, "" while the sequence has none here: a session is opened when its
  // sequence starts and closed when it ends, so that a stage's sessions are held only by
  // sequences at work (an idle one would expire, and hold a slot others could use).
  std::vector<std::string> sessions;
};

}  // namespace

bool ParseSwarmUri(const std::string& uri, ChainOptions* o) {
  const std::string dht = "dht://";
  if (uri.rfind(dht, 0) == 0) {
    o->dht = true;
    o->address.clear();
    o->model = uri.substr(dht.size());
    return true;
  }
  const std::string scheme = "swarm://";
  if (uri.rfind(scheme, 0) != 0) return false;
  const std::string rest = uri.substr(scheme.size());
  const size_t slash = rest.find('/');
  o->dht = false;
  o->address = rest.substr(0, slash);
  o->model = slash == std::string::npos ? "" : rest.substr(slash + 1);
  return !o->address.empty();
}

Status StartDht(ChainOptions* o) {
  if (!o->dht || o->dht_node) return Status::Ok();
  auto node = DhtNode::Start(DhtOptions{"", o->dht_bootstrap, /*read_only=*/true});
  if (!node.ok()) return node.status();
  o->dht_node = std::move(*node);
  return Status::Ok();
}

// The chain itself; finding its stages is the StageDirectory's (net/stage_directory.h),
// whose options, credentials and dead and seen addresses it shares.
struct SwarmChain::Impl : StageDirectory {
  std::string model_name;
  int n_layer = 0, n_embd = 0, n_vocab = 0;
  std::string header;
  std::optional<tokenizer::Tokenizer> tok;
  std::optional<gguf::GgufFile> gguf_header;
  int n_ctx = 0;
  std::vector<int> n_past;  // of each sequence
  std::vector<Link> chain;
  mutable std::mutex route_mu;         // `route`, which other threads read
  std::vector<SwarmChain::Hop> route;  // the chain's stages, as Route() gives them
  // Of each sequence, every batch sent, in order.
  std::vector<std::vector<std::vector<int32_t>>> history;
  int recoveries = 0;
  int exact_run = 1;  // single-token steps replayed at once (ExactRun of the model)

  std::unique_ptr<ChainVerifier> verifier;  // --verify-fraction (made once n_ctx is known)

  // A chain over the model's layers: the live ranges (ChooseModel, LiveRanges), at each
  // position the best stage that starts there (PickStage), a session on each (OpenSessions).
  Status BuildChain() {
    std::vector<Link> next;
    // A DHT lookup can miss an announcement (its reply came after the lookup ended): a chain
    // with a gap looks again, up to three times, with what earlier lookups found kept.
    for (int attempt = 1;; ++attempt) {
      next.clear();
      Status st = PickChain(&next);
      if (st.ok()) break;
      if (!o.dht || attempt == 3 || st.code() != Status::Code::kNotFound) return st;
    }
    if (!next.front().range.has_embedding() || !next.back().range.has_head())
      return Status::Corruption("the chain's ends do not hold the embedding and the head");
    int ctx_cap = o.n_ctx > 0 ? o.n_ctx : model::kDefaultContext;
    for (const Link& l : next) ctx_cap = std::min(ctx_cap, static_cast<int>(l.range.max_ctx()));
    if (n_ctx == 0) n_ctx = ctx_cap;
    if (ctx_cap < n_ctx)
      return Status::InvalidArgument("the new chain allows " + std::to_string(ctx_cap) +
                                     " positions, fewer than the session's " +
                                     std::to_string(n_ctx));
    // Sessions on stages of the old chain that stay keep serving (a replay starts them at
    // position 0 again, which makes them forget the rest); the sequences at work get the
    // others anew, and the old chain's leftovers are closed.
    for (Link& l : next) {
      l.sessions.assign(o.n_seq, "");
      for (Link& old : chain)
        if (old.range.address() == l.range.address() &&
            old.range.first_layer() == l.range.first_layer() &&
            old.range.end_layer() == l.range.end_layer())
          std::swap(l.sessions, old.sessions);
    }
    std::vector<int> working;
    for (int seq = 0; seq < o.n_seq; ++seq)
      if (!history[seq].empty()) working.push_back(seq);
    CloseSessions(chain);
    Status st = OpenSessions(next, working);
    chain = std::move(next);
    std::lock_guard<std::mutex> l(route_mu);
    route.clear();
    for (const Link& k : chain)
      route.push_back({k.range.address(), static_cast<int>(k.range.first_layer()),
                       static_cast<int>(k.range.end_layer()), k.range.kernels()});
    return st;
  }

  // The live ranges and, from layer 0, the best stage at each position (PickStage).
  Status PickChain(std::vector<Link>* next) {
    auto ranges = Lookup();
    if (!ranges.ok()) return ranges.status();
    GGSWARM_RETURN_IF_ERROR(ChooseModel(*ranges));
    auto live = LiveRanges(*ranges);
    if (!live.ok()) return live.status();
    for (int pos = 0; pos < n_layer;) {
      auto l = PickStage(*live, pos);
      if (!l.ok()) return l.status();
      pos = static_cast<int>(l->range.end_layer());
      next->push_back(std::move(*l));
    }
    return Status::Ok();
  }

  // The model the chain is for: the one named, or the only one the peers serve.
  Status ChooseModel(const std::vector<pb::ServedRange>& ranges) {
    if (!model_id.empty()) return Status::Ok();
    std::set<std::string> ids;
    for (const auto& r : ranges) ids.insert(r.model_id());
    if (ids.empty())
      return Status::NotFound("no peer known to " + Where() + " serves " +
                              (o.model.empty() ? std::string("a model") : o.model));
    if (ids.size() > 1)
      return Status::InvalidArgument(Where() + " knows " + std::to_string(ids.size()) +
                                     " models; name one: swarm://" + o.address + "/MODEL");
    model_id = *ids.begin();
    return Status::Ok();
  }

  // The model's ranges on peers not known dead; the model's shape from them.
  StatusOr<std::vector<pb::ServedRange>> LiveRanges(const std::vector<pb::ServedRange>& ranges) {
    std::vector<pb::ServedRange> live;
    for (const auto& r : ranges) {
      if (r.model_id() == model_id && !dead.count(r.address())) live.push_back(r);
    }
    if (live.empty()) return Status::NotFound("no live peer serves " + model_id.substr(0, 16));
    n_layer = static_cast<int>(live[0].n_layer());
    model_name = live[0].model_name();
    n_embd = static_cast<int>(live[0].n_embd());
    n_vocab = static_cast<int>(live[0].n_vocab());
    return live;
  }

  // Of the stages whose range starts at layer `pos`, the one that answers Hello with free
  // sessions first, then the fastest; stages that do not answer are marked dead.
  StatusOr<Link> PickStage(const std::vector<pb::ServedRange>& live, int pos) {
    struct Candidate {
      pb::ServedRange r;
      double rtt;
    };
    // The stages that start at pos, asked all at once (a rebuild waits for the slowest
    // answer, not for the sum of them).
    std::vector<const pb::ServedRange*> asked;
    for (const auto& r : live) {
      if (static_cast<int>(r.first_layer()) != pos || dead.count(r.address())) continue;
      if (static_cast<int>(r.n_layer()) != n_layer || static_cast<int>(r.end_layer()) > n_layer ||
          r.end_layer() <= r.first_layer())
        continue;
      asked.push_back(&r);
    }
    std::vector<std::string> addresses;
    for (const pb::ServedRange* r : asked) addresses.push_back(r->address());
    const std::vector<HelloAnswer> answers = AskHellos(addresses);
    std::vector<Candidate> cands;
    for (size_t i = 0; i < asked.size(); ++i) {
      const grpc::Status& st = answers[i].status;
      const pb::ServedRange& r = *asked[i];
      if (!st.ok()) {
        if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
          return Status::InvalidArgument("stage " + r.address() + ": " + StatusText(st) +
                                         " (give the stages' --token)");
        Log("stage " + RangeText(r) + " at " + r.address() + " does not answer (" + StatusText(st) +
            ")");
        dead.insert(r.address());
        continue;
      }
      cands.push_back({answers[i].reply.served(), answers[i].rtt_s});
    }
    if (cands.empty()) {
      int upto = n_layer;
      for (const auto& r : live) {
        if (static_cast<int>(r.first_layer()) > pos && !dead.count(r.address()))
          upto = std::min(upto, static_cast<int>(r.first_layer()));
      }
      return Status::NotFound("no live peer serves layers " + std::to_string(pos) + "-" +
                              std::to_string(upto - 1) + " of " +
                              (model_name.empty() ? model_id.substr(0, 16) : model_name));
    }
    // The choice itself (chain_plan.h): stages asked for first, then the kernels asked for,
    // then load (a stage with free sessions), then latency.
    std::vector<StageChoice> choices;
    for (const Candidate& c : cands)
      choices.push_back(
          {static_cast<int>(c.r.first_layer()), static_cast<int>(c.r.end_layer()),
           std::find(o.prefer.begin(), o.prefer.end(), c.r.address()) != o.prefer.end(),
           c.r.sessions_free() > 0, c.rtt * 1e3,
           !o.prefer_kernels.empty() && c.r.kernels() == o.prefer_kernels});
    Link l;
    l.range = cands[static_cast<size_t>(BestStage(choices))].r;
    l.stub = Stub(l.range.address());
    return l;
  }

  // A session of the chain's context on every stage of `links` for each of `seqs` that has
  // none there.
  Status OpenSessions(std::vector<Link>& links, const std::vector<int>& seqs) {
    for (Link& l : links) {
      for (int seq : seqs) {
        if (!l.sessions[seq].empty()) continue;
        grpc::ClientContext ctx;
        Prepare(&ctx, o.deadline_s);
        pb::OpenSessionRequest req;
        req.set_n_ctx(static_cast<uint32_t>(n_ctx));
        pb::OpenSessionReply rep;
        grpc::Status st = l.stub->OpenSession(&ctx, req, &rep);
        if (!st.ok())
          return Status::IOError("stage " + RangeText(l.range) + " at " + l.range.address() +
                                 ": cannot open a session: " + StatusText(st));
        l.sessions[seq] = rep.session_id();
      }
    }
    return Status::Ok();
  }

  // Closes the sessions on stage `l` (of sequence `seq` only, when not negative).
  void CloseSessions(Link& l, int seq = -1) {
    for (int s = 0; s < static_cast<int>(l.sessions.size()); ++s) {
      if ((seq >= 0 && s != seq) || l.sessions[s].empty()) continue;
      if (!dead.count(l.range.address())) {
        grpc::ClientContext ctx;
        Prepare(&ctx, 1);
        pb::CloseSessionRequest req;
        req.set_session_id(l.sessions[s]);
        pb::CloseSessionReply rep;
        (void)l.stub->CloseSession(&ctx, req, &rep);
      }
      l.sessions[s].clear();
    }
  }
  void CloseSessions(std::vector<Link>& links, int seq = -1) {
    for (Link& l : links) CloseSessions(l, seq);
  }

  // The most positions one call may carry along the chain.
  int MaxBatch() const {
    int m = INT32_MAX;
    for (const Link& l : chain) m = std::min(m, static_cast<int>(l.range.max_batch()));
    return std::max(1, m);
  }

  // The two calls of a push: what their callbacks write. The chain owns them until both
  // have answered (the first stage's answer comes after the last stage's replies, which
  // are all a step waits for) and lets them go on its caller's thread: a callback never
  // holds the last reference, since a ClientContext holds its channel, and the last
  // reference to a channel dropped on one of gRPC's callback threads ends that thread's
  // own queue under it (gRPC 1.51 aborts: "ref_counted.h: assertion failed: prior > 0").
  struct PushCalls {
    std::mutex mu;
    std::condition_variable cv;
    grpc::ClientContext fctx, actx;
    pb::ForwardRequest one;
    pb::ForwardReply one_rep;
    pb::ForwardManyRequest many;
    pb::ForwardManyReply many_rep;
    pb::AwaitRequest await;
    pb::ForwardManyReply await_rep;
    std::optional<grpc::Status> forwarded, awaited;
    bool Answered() {
      std::lock_guard<std::mutex> l(mu);
      return forwarded && awaited;
    }
  };
  std::vector<std::unique_ptr<PushCalls>> in_flight;

  // Lets go of the pushes whose calls have both answered.
  void Reap() {
    std::erase_if(in_flight, [](const std::unique_ptr<PushCalls>& c) { return c->Answered(); });
  }

  ~Impl() {
    for (auto& c : in_flight) {
      c->fctx.TryCancel();
      c->actx.TryCancel();
      std::unique_lock<std::mutex> l(c->mu);
      c->cv.wait(l, [&] { return c->forwarded && c->awaited; });
    }
  }

  // One call's worth of items [at, end) pushed along the chain: the first stage gets the
  // tokens with the route of the others, and the last stage's replies come back to an Await
  // sent beside it. On failure, `*failed` is the stage that failed (the first stage names
  // a later one in its trailing metadata).
  grpc::Status PushStep(std::span<const ChainItem> items, std::span<const int> positions, size_t at,
                        size_t end, std::vector<std::string>* out, size_t* failed) {
    Reap();
    in_flight.push_back(std::make_unique<PushCalls>());
    PushCalls* c = in_flight.back().get();
    Prepare(&c->fctx, o.deadline_s);
    Prepare(&c->actx, o.deadline_s + 1);  // the push's own failure comes first
    const Link& first = chain.front();
    const Link& last = chain.back();
    for (size_t j = at; j < end; ++j) {
      pb::ForwardRequest* f = c->many.add_items();
      f->set_session_id(first.sessions[items[j].seq]);
      f->set_position(static_cast<uint32_t>(positions[j]));
      f->set_n(static_cast<uint32_t>(items[j].tokens.size()));
      *f->mutable_tokens() = {items[j].tokens.begin(), items[j].tokens.end()};
      f->set_reply_format(o.f16_hidden ? pb::F16 : pb::F32);
      c->await.add_session_ids(last.sessions[items[j].seq]);
      c->await.add_positions(static_cast<uint32_t>(positions[j]));
    }
    pb::ForwardRequest* head = c->many.mutable_items(0);
    for (size_t i = 1; i < chain.size(); ++i) {
      pb::Hop* h = head->add_route();
      h->set_address(chain[i].range.address());
      for (size_t j = at; j < end; ++j) h->add_session_ids(chain[i].sessions[items[j].seq]);
    }
    auto done = [c](std::optional<grpc::Status>* slot) {  // c outlives both calls (Reap)
      return [c, slot](grpc::Status st) {
        std::lock_guard<std::mutex> l(c->mu);
        *slot = st;
        c->cv.notify_all();
      };
    };
    last.stub->async()->Await(&c->actx, &c->await, &c->await_rep, done(&c->awaited));
    if (end - at == 1) {
      c->one = std::move(*c->many.mutable_items(0));
      first.stub->async()->Forward(&c->fctx, &c->one, &c->one_rep, done(&c->forwarded));
    } else {
      first.stub->async()->ForwardMany(&c->fctx, &c->many, &c->many_rep, done(&c->forwarded));
    }
    // Done when the replies are in; failed when the push fails (or the Await does, and then
    // the push's outcome names the stage).
    std::unique_lock<std::mutex> l(c->mu);
    c->cv.wait(l, [&] {
      return (c->awaited && c->awaited->ok()) || (c->forwarded && !c->forwarded->ok()) ||
             (c->awaited && c->forwarded);
    });
    if (c->awaited && c->awaited->ok()) {
      if (c->await_rep.items_size() != static_cast<int>(end - at)) {
        *failed = chain.size() - 1;
        return grpc::Status(grpc::StatusCode::DATA_LOSS, "answered the wrong number of items");
      }
      for (size_t j = at; j < end; ++j) {
        std::string* lg = c->await_rep.mutable_items(static_cast<int>(j - at))->mutable_logits();
        if (lg->size() != static_cast<size_t>(n_vocab) * 4) {
          *failed = chain.size() - 1;
          return grpc::Status(grpc::StatusCode::DATA_LOSS, "sent logits of the wrong size");
        }
        if (!AllFinite(*lg)) {
          *failed = chain.size() - 1;
          return grpc::Status(grpc::StatusCode::DATA_LOSS,
                              "sent logits that are not all finite numbers");
        }
        (*out)[j] = std::move(*lg);
      }
      return grpc::Status::OK;  // the first stage's answer comes later, and says nothing new
    }
    c->actx.TryCancel();
    if (c->forwarded && !c->forwarded->ok()) {
      *failed = 0;
      const auto& trailing = c->fctx.GetServerTrailingMetadata();
      if (auto t = trailing.find(kFailedAtHeader); t != trailing.end())
        for (size_t i = 0; i < chain.size(); ++i)
          if (chain[i].range.address() == std::string(t->second.data(), t->second.size()))
            *failed = i;
      return *c->forwarded;
    }
    *failed = chain.size() - 1;  // the push went through, the last stage did not answer
    return *c->awaited;
  }

  // One step through the whole chain: item j at position positions[j] of its sequence; the
  // logits of the items that want them into `logits` (when not null). Each stage gets the
  // items in calls of at most MaxBatch() positions. On failure, `*failed` is the stage.
  grpc::Status RunStep(std::span<const ChainItem> items, std::span<const int> positions,
                       std::vector<float>* logits, size_t* failed) {
    std::vector<std::string> hidden(items.size());
    std::vector<pb::HiddenFormat> format(items.size(), pb::F32);
    std::vector<std::string> out(items.size());  // the last stage's logits
    const size_t max_batch = static_cast<size_t>(MaxBatch());
    const bool push = o.push && chain.size() > 1;
    for (size_t at = 0; push && at < items.size();) {
      size_t end = at, count = 0;
      while (end < items.size() && (end == at || count + items[end].tokens.size() <= max_batch))
        count += items[end++].tokens.size();
      if (grpc::Status st = PushStep(items, positions, at, end, &out, failed); !st.ok()) return st;
      at = end;
    }
    for (size_t i = 0; !push && i < chain.size(); ++i) {
      Link& l = chain[i];
      const bool last = i + 1 == chain.size();
      for (size_t at = 0; at < items.size();) {
        size_t end = at, count = 0;
        while (end < items.size() && (end == at || count + items[end].tokens.size() <= max_batch))
          count += items[end++].tokens.size();
        std::vector<pb::ForwardRequest> reqs(end - at);
        for (size_t j = at; j < end; ++j) {
          pb::ForwardRequest& req = reqs[j - at];
          req.set_session_id(l.sessions[items[j].seq]);
          req.set_position(static_cast<uint32_t>(positions[j]));
          req.set_n(static_cast<uint32_t>(items[j].tokens.size()));
          if (i == 0) {
            *req.mutable_tokens() = {items[j].tokens.begin(), items[j].tokens.end()};
          } else {
            req.set_hidden(std::move(hidden[j]));
            req.set_format(format[j]);
          }
          req.set_reply_format(o.f16_hidden ? pb::F16 : pb::F32);
        }
        grpc::ClientContext ctx;
        Prepare(&ctx, o.deadline_s);
        std::vector<pb::ForwardReply> reps(end - at);
        grpc::Status st;
        if (reqs.size() == 1) {
          st = l.stub->Forward(&ctx, reqs[0], &reps[0]);
        } else {
          pb::ForwardManyRequest many;
          for (pb::ForwardRequest& r : reqs) *many.add_items() = std::move(r);
          pb::ForwardManyReply rep;
          st = l.stub->ForwardMany(&ctx, many, &rep);
          if (st.ok() && rep.items_size() != static_cast<int>(reps.size()))
            st = grpc::Status(grpc::StatusCode::DATA_LOSS,
                              "answered " + std::to_string(rep.items_size()) + " items of " +
                                  std::to_string(reps.size()));
          for (int k = 0; st.ok() && k < rep.items_size(); ++k)
            reps[k] = std::move(*rep.mutable_items(k));
        }
        for (size_t j = at; st.ok() && j < end; ++j) {
          pb::ForwardReply& rep = reps[j - at];
          if (!last) {
            const size_t want =
                items[j].tokens.size() * static_cast<size_t>(n_embd) * HiddenBytes(rep.format());
            if (rep.hidden().size() != want)
              st = grpc::Status(grpc::StatusCode::DATA_LOSS,
                                "sent " + std::to_string(rep.hidden().size()) +
                                    " bytes of hidden states, not " + std::to_string(want));
            hidden[j] = std::move(*rep.mutable_hidden());
            format[j] = rep.format();
          } else {
            if (rep.logits().size() != static_cast<size_t>(n_vocab) * 4)
              st = grpc::Status(grpc::StatusCode::DATA_LOSS, "sent logits of the wrong size");
            else if (!AllFinite(rep.logits()))
              st = grpc::Status(grpc::StatusCode::DATA_LOSS,
                                "sent logits that are not all finite numbers");
            out[j] = std::move(*rep.mutable_logits());
          }
        }
        if (!st.ok()) {
          *failed = i;
          return st;
        }
        at = end;
      }
    }
    if (logits) {
      logits->clear();
      for (size_t j = 0; j < items.size(); ++j) {
        if (!items[j].logits) continue;
        logits->resize(logits->size() + static_cast<size_t>(n_vocab));
        FromWire(out[j], pb::F32, logits->data() + logits->size() - n_vocab,
                 static_cast<size_t>(n_vocab));
      }
    }
    return grpc::Status::OK;
  }

  // The tokens of sequence `seq` so far, in order.
  std::vector<int32_t> Tokens(int seq) const {
    std::vector<int32_t> t;
    for (const auto& b : history[seq]) t.insert(t.end(), b.begin(), b.end());
    return t;
  }

  // What a failure of stage `at` means: a stage that stopped answering is dead; one that
  // lost a session (it expired, or the stage restarted) gets all of them anew.
  void Lost(const grpc::Status& why, size_t at) {
    if (why.error_code() != grpc::StatusCode::NOT_FOUND)
      dead.insert(chain[at].range.address());
    else
      CloseSessions(chain[at]);
  }

  // A new chain, without the stage that failed, with every batch so far replayed.
  Status Recover(const grpc::Status& why, size_t failed) {
    const pb::ServedRange bad = chain[failed].range;
    Lost(why, failed);
    if (++recoveries > o.max_recoveries)
      return Status::IOError("gave up after " + std::to_string(o.max_recoveries) +
                             " chain rebuilds; last: stage " + RangeText(bad) + " at " +
                             bad.address() + ": " + StatusText(why));
    const auto t0 = Clock::now();
    // Each sequence's batches in the shapes they were sent, but runs of single-token steps
    // together (ReplayCalls: each token gets the bits it got). The sequences go side by
    // side, the k-th call of each in the k-th step: a sequence's results do not depend on
    // the company it keeps.
    std::vector<std::vector<int>> sizes(history.size()), calls(history.size());
    std::vector<std::vector<int32_t>> tokens(history.size());
    size_t replay = 0, steps = 0, seqs = 0;
    for (size_t seq = 0; seq < history.size(); ++seq) {
      for (const auto& b : history[seq]) sizes[seq].push_back(static_cast<int>(b.size()));
      tokens[seq] = Tokens(static_cast<int>(seq));
      replay += tokens[seq].size();
      seqs += !tokens[seq].empty();
    }
    Log("stage " + RangeText(bad) + " at " + bad.address() + " failed (" + StatusText(why) +
        "): rebuilding the chain and replaying " + std::to_string(replay) + " tokens");
    for (;;) {
      GGSWARM_RETURN_IF_ERROR(BuildChain());
      for (size_t seq = 0; seq < history.size(); ++seq)
        calls[seq] = ReplayCalls(sizes[seq], exact_run, MaxBatch());
      grpc::Status st;
      size_t at = 0;
      std::vector<int> done(history.size(), 0);  // positions replayed, of each sequence
      for (steps = 0; st.ok(); ++steps) {
        std::vector<ChainItem> items;
        std::vector<int> positions;
        for (size_t seq = 0; seq < history.size(); ++seq) {
          if (steps >= calls[seq].size()) continue;
          items.push_back(
              {static_cast<int>(seq),
               std::span<const int32_t>(tokens[seq]).subspan(done[seq], calls[seq][steps]), false});
          positions.push_back(done[seq]);
          done[seq] += calls[seq][steps];
        }
        if (items.empty()) break;
        st = RunStep(items, positions, nullptr, &at);
      }
      if (st.ok()) break;
      if (!Recoverable(st))
        return Status::IOError("replaying on stage " + RangeText(chain[at].range) + " at " +
                               chain[at].range.address() + ": " + StatusText(st));
      Lost(st, at);
      if (++recoveries > o.max_recoveries)
        return Status::IOError("gave up after " + std::to_string(o.max_recoveries) +
                               " chain rebuilds");
    }
    std::string desc;
    for (const Link& l : chain) desc += " " + RangeText(l.range) + "@" + l.range.address();
    char took[96];
    std::snprintf(took, sizeof took, " (%.2f s, %zu tokens of %zu sequences replayed in %zu steps)",
                  std::chrono::duration<double>(Clock::now() - t0).count(), replay, seqs, steps);
    Log("chain rebuilt:" + desc + took);
    return Status::Ok();
  }
};

StatusOr<std::unique_ptr<SwarmChain>> SwarmChain::Connect(const ChainOptions& o) {
  auto c = std::unique_ptr<SwarmChain>(new SwarmChain());
  c->impl_ = std::make_unique<Impl>();
  Impl& m = *c->impl_;
  m.o = o;
  if (o.n_batch < 1) return Status::InvalidArgument("the batch size must be at least 1");
  GGSWARM_RETURN_IF_ERROR(m.UseTls(o.tls_ca));
  if (o.n_seq < 1 || o.n_seq > 256)
    return Status::InvalidArgument("a chain carries 1 to 256 sequences, not " +
                                   std::to_string(o.n_seq));
  m.n_past.assign(o.n_seq, 0);
  m.history.resize(o.n_seq);
  if (!(o.verify_fraction >= 0 && o.verify_fraction <= 1))
    return Status::InvalidArgument("--verify-fraction is a fraction of steps, 0 to 1");
  m.dead.insert(o.avoid.begin(), o.avoid.end());
  GGSWARM_RETURN_IF_ERROR(m.BuildChain());
  // The tokenizer, from the model's GGUF header as the first stage has it.
  grpc::ClientContext ctx;
  m.Prepare(&ctx, o.deadline_s);
  pb::HeaderReply rep;
  grpc::Status st = m.chain.front().stub->Header(&ctx, pb::HeaderRequest(), &rep);
  if (!st.ok()) return Status::IOError("cannot get the model's header: " + StatusText(st));
  m.header = rep.gguf_header();
  gguf::ParseOptions po;
  po.full_file_size = rep.file_size();
  auto header = gguf::GgufFile::Parse(
      {reinterpret_cast<const uint8_t*>(m.header.data()), m.header.size()}, po);
  if (!header.ok()) return header.status().WithContext("the model's header from the swarm");
  auto tok = tokenizer::Tokenizer::FromGguf(*header);
  if (!tok.ok()) return tok.status().WithContext("the model's header from the swarm");
  m.tok.emplace(std::move(*tok));
  m.gguf_header.emplace(std::move(*header));
  m.exact_run = ExactRun(*m.gguf_header);
  m.verifier = std::make_unique<ChainVerifier>(o, m.n_ctx, m.n_vocab, m.exact_run);
  return c;
}

StatusOr<std::vector<StageInfo>> ListStages(const std::string& address, const std::string& model,
                                            const std::string& token, const std::string& tls_ca) {
  ChainOptions o;
  o.address = address;
  o.model = model;
  o.token = token;
  o.tls_ca = tls_ca;
  return ListStages(o);
}

StatusOr<std::vector<StageInfo>> ListStages(const ChainOptions& o) {
  StageDirectory m;
  m.o = o;
  GGSWARM_RETURN_IF_ERROR(m.UseTls(o.tls_ca));
  auto ranges = m.Lookup(/*all=*/true);
  if (!ranges.ok()) return ranges.status();
  // Every stage asked again, at once: whether it answers now, its round trip and load.
  std::vector<std::string> addresses;
  for (const auto& r : *ranges) addresses.push_back(r.address());
  const std::vector<HelloAnswer> answers = m.AskHellos(addresses);
  std::vector<StageInfo> v;
  for (size_t i = 0; i < ranges->size(); ++i) {
    const pb::ServedRange& r = (*ranges)[i];
    StageInfo s;
    s.model_id = r.model_id();
    s.model_name = r.model_name();
    s.address = r.address();
    s.first_layer = static_cast<int>(r.first_layer());
    s.end_layer = static_cast<int>(r.end_layer());
    s.n_layer = static_cast<int>(r.n_layer());
    s.has_embedding = r.has_embedding();
    s.has_head = r.has_head();
    s.sessions_free = static_cast<int>(r.sessions_free());
    s.answers = answers[i].status.ok();
    s.rtt_ms = answers[i].rtt_s * 1e3;
    if (s.answers) {
      const pb::ServedRange& now = answers[i].reply.served();
      s.sessions_free = static_cast<int>(now.sessions_free());
      s.max_sessions = static_cast<int>(now.max_sessions());
      s.open_sessions = static_cast<int>(now.open_sessions());
      s.busy = now.busy();
      s.kernels = now.kernels();
    }
    v.push_back(s);
  }
  std::sort(v.begin(), v.end(), [](const StageInfo& a, const StageInfo& b) {
    return std::tie(a.model_id, a.first_layer, a.address) <
           std::tie(b.model_id, b.first_layer, b.address);
  });
  return v;
}

SwarmChain::~SwarmChain() {
  if (impl_) impl_->CloseSessions(impl_->chain);
}

const tokenizer::Tokenizer& SwarmChain::tokenizer() const { return *impl_->tok; }
const gguf::GgufFile& SwarmChain::header() const { return *impl_->gguf_header; }
int SwarmChain::n_ctx() const { return impl_->n_ctx; }
int SwarmChain::n_seq() const { return impl_->o.n_seq; }
int SwarmChain::max_batch() const { return impl_->MaxBatch(); }
int SwarmChain::n_past(int seq) const { return impl_->n_past[seq]; }
int SwarmChain::recoveries() const { return impl_->recoveries; }
int SwarmChain::checks() const { return static_cast<int>(impl_->verifier->checks()); }
std::vector<std::string> SwarmChain::banned() const {
  return {impl_->verifier->banned().begin(), impl_->verifier->banned().end()};
}
const std::string& SwarmChain::model_id() const { return impl_->model_id; }

// The sequence's sessions are closed; its next step opens new ones.
void SwarmChain::Reset(int seq) {
  impl_->verifier->Reset(seq);
  impl_->CloseSessions(impl_->chain, seq);
  impl_->n_past[seq] = 0;
  impl_->history[seq].clear();
}

void SwarmChain::Truncate(int seq, int n) {
  Impl& m = *impl_;
  if (n <= 0) return Reset(seq);
  if (n >= m.n_past[seq]) return;
  m.verifier->Truncate(seq, n);
  std::vector<std::vector<int32_t>>& h = m.history[seq];
  size_t kept = 0, b = 0;
  for (; b < h.size() && kept + h[b].size() <= static_cast<size_t>(n); ++b) kept += h[b].size();
  if (b < h.size() && kept < static_cast<size_t>(n)) h[b++].resize(n - kept);
  h.resize(b);
  m.n_past[seq] = n;
}

std::vector<std::string> SwarmChain::Describe() const {
  std::vector<std::string> v;
  for (const auto& l : impl_->chain) v.push_back(RangeText(l.range) + " at " + l.range.address());
  return v;
}

std::vector<SwarmChain::Hop> SwarmChain::Route() const {
  std::lock_guard<std::mutex> l(impl_->route_mu);
  return impl_->route;
}

Status SwarmChain::Eval(std::span<const int32_t> tokens, std::vector<float>* logits) {
  Impl& m = *impl_;
  if (tokens.empty()) return Status::InvalidArgument("nothing to evaluate (no tokens)");
  // Batches as a local engine cuts them, so that the numbers are the same.
  const size_t n_batch = static_cast<size_t>(std::min(m.o.n_batch, m.MaxBatch()));
  if (m.n_past[0] + tokens.size() > static_cast<size_t>(m.n_ctx))
    return Status::InvalidArgument("the context is full: " + std::to_string(m.n_past[0]) + " + " +
                                   std::to_string(tokens.size()) + " tokens exceed " +
                                   std::to_string(m.n_ctx));
  for (size_t at = 0; at < tokens.size(); at += n_batch) {
    const size_t n = std::min(n_batch, tokens.size() - at);
    const ChainItem item{0, tokens.subspan(at, n), at + n == tokens.size()};
    GGSWARM_RETURN_IF_ERROR(Step(std::span<const ChainItem>(&item, 1), logits));
  }
  return Status::Ok();
}

Status SwarmChain::Step(std::span<const ChainItem> items, std::vector<float>* logits) {
  Impl& m = *impl_;
  std::vector<int> positions;
  std::vector<bool> seen(m.o.n_seq, false);
  for (const ChainItem& it : items) {
    if (it.seq < 0 || it.seq >= m.o.n_seq || seen[it.seq])
      return Status::InvalidArgument("sequence " + std::to_string(it.seq) +
                                     " is not one of the chain's or comes twice in a step");
    seen[it.seq] = true;
    if (it.tokens.empty()) return Status::InvalidArgument("nothing to evaluate (no tokens)");
    if (it.tokens.size() > static_cast<size_t>(m.MaxBatch()))
      return Status::InvalidArgument(std::to_string(it.tokens.size()) +
                                     " tokens in one batch: the stages take at most " +
                                     std::to_string(m.MaxBatch()));
    if (m.n_past[it.seq] + it.tokens.size() > static_cast<size_t>(m.n_ctx))
      return Status::InvalidArgument("the context is full: " + std::to_string(m.n_past[it.seq]) +
                                     " + " + std::to_string(it.tokens.size()) + " tokens exceed " +
                                     std::to_string(m.n_ctx));
    positions.push_back(m.n_past[it.seq]);
  }
  std::vector<int> seqs;
  for (const ChainItem& it : items) seqs.push_back(it.seq);
  for (;;) {
    for (;;) {
      GGSWARM_RETURN_IF_ERROR(m.OpenSessions(m.chain, seqs));  // for sequences that start
      size_t failed = 0;
      grpc::Status st = m.RunStep(items, positions, logits, &failed);
      if (st.ok()) break;
      if (!Recoverable(st))
        return Status::IOError("stage " + RangeText(m.chain[failed].range) + " at " +
                               m.chain[failed].range.address() + ": " + StatusText(st));
      GGSWARM_RETURN_IF_ERROR(m.Recover(st, failed));
    }
    for (const ChainItem& it : items) {
      m.history[it.seq].emplace_back(it.tokens.begin(), it.tokens.end());
      m.n_past[it.seq] += static_cast<int>(it.tokens.size());
    }
    if (m.o.verify_fraction <= 0 || !logits) return Status::Ok();
    bool redo = false;
    size_t failed = 0;
    std::vector<Hop> hops;
    for (const Link& l : m.chain)
      hops.push_back({l.range.address(), static_cast<int>(l.range.first_layer()),
                      static_cast<int>(l.range.end_layer()), l.range.kernels()});
    GGSWARM_RETURN_IF_ERROR(m.verifier->Verify(
        items, *logits, hops,
        [&m](int seq) -> const std::vector<std::vector<int32_t>>& { return m.history[seq]; }, &redo,
        &failed));
    if (!redo) return Status::Ok();
    // A stage of this chain was banned: the step is undone, and done again on a chain
    // without it (rebuilt, with every earlier batch replayed).
    for (const ChainItem& it : items) {
      m.history[it.seq].pop_back();
      m.n_past[it.seq] -= static_cast<int>(it.tokens.size());
    }
    GGSWARM_RETURN_IF_ERROR(m.Recover(
        grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "banned for disagreeing"), failed));
  }
}

}  // namespace ggswarm::net
