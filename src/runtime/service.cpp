#include "runtime/service.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "model/llama.h"
#include "runtime/engine.h"
#include "runtime/limits.h"

namespace ggswarm::runtime {

using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Status CheckCompletion(const Completion& c, int n_ctx) {
  GGSWARM_RETURN_IF_ERROR(CheckGenerateOptions(c.gen));
  if (c.prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  if (static_cast<int>(c.prompt.size()) >= n_ctx)
    return Status::InvalidArgument("the prompt (" + std::to_string(c.prompt.size()) +
                                   " tokens) does not fit the context of " + std::to_string(n_ctx) +
                                   " tokens per sequence");
  if (c.logprobs > 20)
    return Status::InvalidArgument("top_logprobs " + std::to_string(c.logprobs) +
                                   " is more than 20");
  return Status::Ok();
}

// The counters both services keep, and the tokens/s over a sliding window.
class Counters {
 public:
  void Generated(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    s_.generated_tokens += n;
    const auto now = Clock::now();
    window_.push_back({now, n});
    while (!window_.empty() && now - window_.front().first > std::chrono::seconds(10))
      window_.pop_front();
  }
  template <typename F>
  void Update(F f) {
    std::lock_guard<std::mutex> lock(mu_);
    f(s_);
  }
  ServiceStats Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    ServiceStats s = s_;
    const auto now = Clock::now();
    uint64_t n = 0;
    for (const auto& [t, c] : window_)
      if (now - t <= std::chrono::seconds(10)) n += c;
    s.tokens_per_second = n / 10.0;
    return s;
  }

 private:
  mutable std::mutex mu_;
  ServiceStats s_;
  std::deque<std::pair<Clock::time_point, int>> window_;
};

struct Request {
  Completion c;
  Callbacks cb;
  std::shared_ptr<Ticket> ticket;
  Clock::time_point queued;
};

// What both services share: the bounded queue of requests, their counters and the thread
// that serves them. A derived service starts the thread and stops it (StopThread) in its
// destructor, before its own members go.
class QueuedService : public Service {
 public:
  int parallel() const override { return parallel_; }
  ServiceStats Stats() const override { return counters_.Get(); }

  StatusOr<std::shared_ptr<Ticket>> Submit(Completion c, Callbacks cb) override {
    GGSWARM_RETURN_IF_ERROR(CheckCompletion(c, n_ctx()));
    const size_t n_vocab = tokenizer().vocab().size();
    for (const auto& [token, bias] : c.gen.sampling.logit_bias)
      if (token < 0 || static_cast<size_t>(token) >= n_vocab)
        return Status::InvalidArgument("logit_bias names token " + std::to_string(token) +
                                       ", which is not one of the vocabulary's " +
                                       std::to_string(n_vocab));
    auto r = std::make_shared<Request>();
    r->c = std::move(c);
    r->cb = std::move(cb);
    r->ticket = std::make_shared<Ticket>();
    r->queued = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      const int free_slots = parallel_ - busy_;
      if (static_cast<int>(queue_.size()) >= max_queue_ + free_slots) {
        counters_.Update([](ServiceStats& st) { ++st.refused; });
        return Status::Unavailable("all " + std::to_string(parallel_) + " slots are busy and " +
                                   std::to_string(queue_.size()) +
                                   " requests are waiting; try again later");
      }
      queue_.push_back(r);
      counters_.Update([&](ServiceStats& st) {
        ++st.requests;
        st.queued = static_cast<int>(queue_.size());
      });
    }
    cv_.notify_all();
    return r->ticket;
  }

 protected:
  QueuedService(int parallel, int max_queue) : parallel_(parallel), max_queue_(max_queue) {
    counters_.Update([&](ServiceStats& st) { st.slots = parallel; });
  }
  void StopThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  const int parallel_, max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;
  int busy_ = 0;
  bool stopping_ = false;
  Counters counters_;
  std::thread thread_;
};

}  // namespace

float Logprob(std::span<const float> logits, int32_t token, int top,
              std::vector<TokenLogprob>* out) {
  float mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  if (out) {
    out->clear();
    if (top > 0) {
      std::vector<int32_t> ids(logits.size());
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
      const size_t k = std::min<size_t>(top, ids.size());
      std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      for (size_t i = 0; i < k; ++i) out->push_back({ids[i], logits[ids[i]] - lse});
    }
  }
  return logits[token] - lse;
}

SequenceDecoder::SequenceDecoder(const tokenizer::Tokenizer& tok, const Completion& c)
    : tok_(tok), gen_(c.gen), logprobs_(c.logprobs), sampler_(c.gen.sampling), stream_(tok) {
  if (gen_.max_tokens < 0) gen_.max_tokens = INT_MAX;
  for (int32_t t : c.prompt) sampler_.Accept(t);
}

bool SequenceDecoder::Next(std::span<const float> logits, int n_past, int n_ctx, TokenEvent* ev,
                           int32_t* next) {
  if (generated_ >= gen_.max_tokens) {
    stop_ = StopReason::kMaxTokens;
    return false;
  }
  const int32_t tok = sampler_.Sample(logits);
  if (!gen_.ignore_eos && tok_.vocab().IsEog(tok)) {
    stop_ = StopReason::kEndOfGeneration;
    return false;
  }
  sampler_.Accept(tok);
  ++generated_;
  ev->token = tok;
  ev->text = stream_.Push(tok);
  ev->logprob = logprobs_ >= 0 ? Logprob(logits, tok, logprobs_, &ev->top) : 0;
  *next = tok;
  // The token is given; whether another may follow is decided now, as Generate does.
  if (generated_ >= gen_.max_tokens)
    stop_ = StopReason::kMaxTokens;
  else if (n_past >= n_ctx)
    stop_ = StopReason::kContextFull;
  return true;
}

bool SequenceDecoder::Flush(TokenEvent* ev) {
  ev->token = -1;
  ev->text = stream_.Flush();
  ev->top.clear();
  return !ev->text.empty();
}

namespace {

// --- A local model's sequences in one batch per step -----------------------------------

class LocalBatch : public BatchEvaluator {
 public:
  static StatusOr<std::unique_ptr<BatchEvaluator>> Open(const std::string& path,
                                                        const ServiceOptions& o) {
    auto lm = OpenLocalModel(path, o.n_ctx);
    if (!lm.ok()) return lm.status();
    auto e = std::unique_ptr<LocalBatch>(new LocalBatch(std::move(lm->tokenizer)));
    e->source_ = std::move(lm->source);
    e->model_ = std::move(lm->model);
    e->layers_ = std::make_unique<model::LayerRange>(e->model_, 0, e->model_->config().n_layer,
                                                     lm->n_ctx, o.parallel, o.n_batch);
    e->pool_ = std::make_unique<ThreadPool>(o.threads);
    return std::unique_ptr<BatchEvaluator>(std::move(e));
  }
  const tokenizer::Tokenizer& tokenizer() const override { return tokenizer_; }
  const gguf::GgufFile& header() const override { return source_->header(); }
  int n_seq() const override { return layers_->n_seq(); }
  int n_ctx() const override { return layers_->n_ctx(); }
  int n_past(int seq) const override { return layers_->n_past(seq); }
  void Reset(int seq) override { layers_->Truncate(0, seq); }
  bool Truncate(int seq, int n) override { return layers_->Truncate(n, seq); }

  Status Step(std::span<const SeqTokens> items, std::vector<float>* logits) override {
    const int d = model_->config().n_embd, nv = model_->config().n_vocab;
    tokens_.clear();
    runs_.clear();
    for (const SeqTokens& it : items) {
      runs_.push_back({it.seq, static_cast<int>(it.tokens.size())});
      tokens_.insert(tokens_.end(), it.tokens.begin(), it.tokens.end());
    }
    x_.resize(tokens_.size() * d);
    GGSWARM_RETURN_IF_ERROR(model_->Embed(tokens_, x_.data()));
    GGSWARM_RETURN_IF_ERROR(layers_->ForwardBatch(x_.data(), runs_, *pool_));
    // The rows whose logits are wanted, through the head together.
    hx_.clear();
    size_t first = 0;
    for (const SeqTokens& it : items) {
      first += it.tokens.size();
      if (!it.logits) continue;
      const float* row = x_.data() + (first - 1) * d;
      hx_.insert(hx_.end(), row, row + d);
    }
    const int rows = static_cast<int>(hx_.size() / d);
    logits->resize(static_cast<size_t>(rows) * nv);
    if (rows == 0) return Status::Ok();
    return model_->Head(hx_.data(), rows, logits->data(), *pool_, &head_scratch_);
  }

 private:
  explicit LocalBatch(tokenizer::Tokenizer tok) : tokenizer_(std::move(tok)) {}
  tokenizer::Tokenizer tokenizer_;
  std::shared_ptr<TensorSource> source_;
  std::shared_ptr<model::LlamaModel> model_;
  std::unique_ptr<model::LayerRange> layers_;
  std::unique_ptr<ThreadPool> pool_;
  model::MatMulScratch head_scratch_;
  std::vector<int32_t> tokens_;
  std::vector<model::SeqRun> runs_;
  std::vector<float> x_, hx_;
};

// --- Many sequences, one step for all of a lane's at a time ------------------------------

// Requests go from one queue to the free slots of the lanes; each lane is a BatchEvaluator
// with a thread that steps all of its sequences together. One lane: a local model. Several:
// groups of sequences that a swarm chain's stages work on in turn (while the second stage
// works on one lane's step, the first works on another's).
class BatchService : public QueuedService {
 public:
  ~BatchService() override {
    StopThread();
    for (Lane& l : lanes_)
      if (l.thread.joinable()) l.thread.join();
  }

  static StatusOr<std::unique_ptr<Service>> Start(
      std::vector<std::unique_ptr<BatchEvaluator>> lanes, const ServiceOptions& o) {
    if (lanes.empty()) return Status::InvalidArgument("a service needs an evaluator");
    if (o.max_queue < 0) return Status::InvalidArgument("the queue limit is negative");
    int parallel = 0;
    for (const auto& l : lanes) parallel += l->n_seq();
    auto s = std::unique_ptr<BatchService>(new BatchService(parallel, o));
    s->lanes_.resize(lanes.size());
    for (size_t i = 0; i < lanes.size(); ++i) {
      s->lanes_[i].eval = std::move(lanes[i]);
      s->lanes_[i].slots.resize(s->lanes_[i].eval->n_seq());
      s->lanes_[i].cached.resize(s->lanes_[i].eval->n_seq());
    }
    for (Lane& l : s->lanes_) l.thread = std::thread([p = s.get(), &l] { p->Loop(l); });
    return std::unique_ptr<Service>(std::move(s));
  }

  const tokenizer::Tokenizer& tokenizer() const override { return lanes_[0].eval->tokenizer(); }
  const gguf::GgufFile& header() const override { return lanes_[0].eval->header(); }
  int n_ctx() const override { return lanes_[0].eval->n_ctx(); }

 private:
  struct Slot {
    std::shared_ptr<Request> req;
    std::unique_ptr<SequenceDecoder> dec;
    size_t fed = 0;     // prompt tokens in the cache
    int32_t next = -1;  // the token to feed in the decoding phase
    bool decoding = false;
    int reused = 0;         // prompt tokens found in the cache
    bool starting = false;  // admitted; the evaluator's cache not yet cut back (Start)
    Clock::time_point start, first;
  };
  // What a slot's cache holds, kept from one request to the next (cache_prompt); under mu_,
  // so that every lane's Admit can see where a prompt's start is cached.
  struct Cached {
    std::vector<int32_t> tokens;  // the tokens whose keys and values are in the cache
    uint64_t used = 0;            // when it last served a request (Admit's count)
    bool busy = false;            // the slot serves a request
  };
  struct Lane {
    std::unique_ptr<BatchEvaluator> eval;
    std::vector<Slot> slots;     // the lane's thread's own
    std::vector<Cached> cached;  // per slot, under mu_
    int busy = 0;                // under mu_
    std::thread thread;
  };

  BatchService(int parallel, const ServiceOptions& o)
      : QueuedService(parallel, o.max_queue), opts_(o) {
    opts_.n_batch = std::max(1, o.n_batch);
  }

  void Finish(Lane& lane, int s, const Status& st, StopReason stop) {
    Slot& slot = lane.slots[s];
    Outcome o;
    o.status = st;
    o.stop = stop;
    o.prompt_tokens = static_cast<int>(slot.req->c.prompt.size());
    o.cached_tokens = slot.reused;
    if (slot.dec) {
      o.generated = slot.dec->generated();
      TokenEvent ev;
      if (st.ok() && slot.dec->Flush(&ev) && slot.req->cb.on_token) slot.req->cb.on_token(ev);
    }
    const auto now = Clock::now();
    o.queue_ms = Ms(slot.req->queued, slot.start);
    o.prompt_ms = slot.decoding ? Ms(slot.start, slot.first) : Ms(slot.start, now);
    o.gen_ms = slot.decoding ? Ms(slot.first, now) : 0;
    if (slot.req->cb.on_done) slot.req->cb.on_done(o);
    // The cache stays for the next request unless the step failed or it is not wanted.
    const bool keep = st.ok() && opts_.cache_prompt && slot.req->c.cache_prompt;
    if (!keep) lane.eval->Reset(s);  // (its sessions closed at once, on a swarm)
    slot = Slot();
    std::lock_guard<std::mutex> lock(mu_);
    if (!keep) lane.cached[s].tokens.clear();
    lane.cached[s].busy = false;
    --busy_;
    --lane.busy;
    counters_.Update([&](ServiceStats& st) { st.busy = busy_; });
  }

  // Moves waiting requests into the lane's free slots; false when stopping.
  bool Admit(Lane& lane) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      return stopping_ || lane.busy > 0 || (!queue_.empty() && Takes(lane, queue_.front()->c));
    });
    if (stopping_) return false;
    while (!queue_.empty() && Takes(lane, queue_.front()->c)) {
      const int s = PickSlot(lane, queue_.front()->c).slot;
      Slot& slot = lane.slots[s];
      slot.req = std::move(queue_.front());
      queue_.pop_front();
      slot.dec = std::make_unique<SequenceDecoder>(lane.eval->tokenizer(), slot.req->c);
      slot.start = Clock::now();
      Reuse(lane, s);
      ++busy_;
      ++lane.busy;
    }
    if (!queue_.empty()) cv_.notify_all();  // the next may be another lane's
    counters_.Update([&](ServiceStats& st) {
      st.busy = busy_;
      st.queued = static_cast<int>(queue_.size());
    });
    return true;
  }

  static bool Room(const Lane& l) { return l.busy < static_cast<int>(l.slots.size()); }

  // Whether `lane` takes request c now: a lane whose free slot holds the start of c's prompt
  // takes it (see PickSlot); without one anywhere, the least busy lane with a free slot does
  // (lanes that step at the same time are what keeps every stage of a swarm at work).
  bool Takes(const Lane& lane, const Completion& c) const {
    if (!Room(lane)) return false;
    const Lane* best = nullptr;
    size_t best_len = 0;
    int least = INT_MAX;
    for (const Lane& l : lanes_) {
      if (!Room(l)) continue;
      least = std::min(least, l.busy);
      const Pick p = PickSlot(l, c);
      if (p.reused > best_len) {
        best = &l;
        best_len = p.reused;
      }
    }
    return best ? best == &lane : lane.busy <= least;
  }

  // A free slot of a lane for request c, and how much of its prompt the slot's cache holds
  // (0 unless that is at least half the prompt, as llama-server's slot similarity has it):
  // the slot that holds the most; otherwise the one unused the longest, an empty one first,
  // so that a cache sharing only its first token or two with a new prompt stays for the
  // conversation it belongs to. Under mu_.
  struct Pick {
    int slot = -1;
    size_t reused = 0;
  };
  Pick PickSlot(const Lane& lane, const Completion& c) const {
    Pick best;
    int oldest = -1;
    const auto older = [](const Cached& a, const Cached& b) {
      return a.tokens.empty() != b.tokens.empty() ? a.tokens.empty() : a.used < b.used;
    };
    for (size_t s = 0; s < lane.cached.size(); ++s) {
      const Cached& k = lane.cached[s];
      if (k.busy) continue;
      if (oldest < 0 || older(k, lane.cached[static_cast<size_t>(oldest)]))
        oldest = static_cast<int>(s);
      const size_t len = Reusable(k, c);
      if (len > best.reused) best = {static_cast<int>(s), len};
    }
    if (best.slot < 0) best.slot = oldest;
    return best;
  }

  // How much of c's prompt a slot's cache k holds, if the request may use it and it is at
  // least half the prompt; else 0. A shorter shared start (a BOS token, a short system
  // message) is computed again: it would save little, and a prompt computed in two parts
  // rounds differently (docs/server.md), so that the answer would depend on what the slot
  // served before.
  size_t Reusable(const Cached& k, const Completion& c) const {
    if (!opts_.cache_prompt || !c.cache_prompt) return 0;
    const auto& a = k.tokens;
    const auto& b = c.prompt;
    const auto len = static_cast<size_t>(
        std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
    return 2 * len >= b.size() ? len : 0;
  }

  // Slot s's new request goes on from what its cache holds of the prompt (Reusable): all of
  // it but the last token at most (whose logits the first step needs), or nothing. Under mu_; the
  // lane's thread then cuts the evaluator's cache back (Start: a swarm chain's Reset calls stages).
  void Reuse(Lane& lane, int s) {
    Slot& slot = lane.slots[s];
    Cached& k = lane.cached[s];
    const std::vector<int32_t>& p = slot.req->c.prompt;
    const size_t keep = std::min(Reusable(k, slot.req->c), p.size() - 1);
    k.tokens.resize(keep);
    k.used = ++admitted_;
    k.busy = true;
    slot.fed = keep;
    slot.reused = static_cast<int>(keep);
    slot.starting = true;
  }

  // The evaluator's side of Reuse, for the slots just given a request.
  void Start(Lane& lane) {
    for (size_t s = 0; s < lane.slots.size(); ++s) {
      Slot& slot = lane.slots[s];
      if (!slot.req || !slot.starting) continue;
      slot.starting = false;
      const int seq = static_cast<int>(s);
      if (slot.reused > 0 && lane.eval->Truncate(seq, slot.reused)) continue;
      lane.eval->Reset(seq);
      if (slot.reused == 0) continue;
      slot.fed = 0;  // the evaluator cannot keep part of a sequence
      slot.reused = 0;
      std::lock_guard<std::mutex> lock(mu_);
      lane.cached[s].tokens.clear();
    }
  }

  void Loop(Lane& lane) {
    BatchEvaluator& ev = *lane.eval;
    std::vector<SeqTokens> items;
    std::vector<int> item_slot, want_slot;
    std::vector<float> logits;
    while (Admit(lane)) {
      Start(lane);
      // Cancelled requests go first, so their slots serve the next step.
      for (size_t s = 0; s < lane.slots.size(); ++s)
        if (lane.slots[s].req && lane.slots[s].req->ticket->cancelled())
          Finish(lane, static_cast<int>(s), Status::Ok(), StopReason::kCallback);
      // The step: one token for every decoding sequence, then whole prompt chunks (each
      // prompt cut the same way whatever else runs) while they fit n_batch, at least one.
      items.clear();
      item_slot.clear();
      want_slot.clear();
      for (size_t s = 0; s < lane.slots.size(); ++s) {
        Slot& slot = lane.slots[s];
        if (!slot.req || !slot.decoding) continue;
        items.push_back({static_cast<int>(s), std::span<const int32_t>(&slot.next, 1), true});
        item_slot.push_back(static_cast<int>(s));
        want_slot.push_back(static_cast<int>(s));
      }
      int prompt_tokens = 0;
      for (size_t s = 0; s < lane.slots.size(); ++s) {
        Slot& slot = lane.slots[s];
        if (!slot.req || slot.decoding) continue;
        const std::vector<int32_t>& p = slot.req->c.prompt;
        const int chunk = static_cast<int>(std::min<size_t>(opts_.n_batch, p.size() - slot.fed));
        if (prompt_tokens > 0 && prompt_tokens + chunk > opts_.n_batch) break;
        const bool last = slot.fed + chunk == p.size();
        items.push_back({static_cast<int>(s),
                         std::span<const int32_t>(p.data() + slot.fed, static_cast<size_t>(chunk)),
                         last});
        item_slot.push_back(static_cast<int>(s));
        if (last) want_slot.push_back(static_cast<int>(s));
        prompt_tokens += chunk;
      }
      if (items.empty()) continue;
      const Status st = ev.Step(items, &logits);
      if (!st.ok()) {
        for (int s : item_slot) Finish(lane, s, st, StopReason::kCallback);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = 0; i < items.size(); ++i) {
          Slot& slot = lane.slots[item_slot[i]];
          if (!slot.decoding) slot.fed += items[i].tokens.size();
          std::vector<int32_t>& cached = lane.cached[item_slot[i]].tokens;
          cached.insert(cached.end(), items[i].tokens.begin(), items[i].tokens.end());
        }
      }
      counters_.Update([&](ServiceStats& c) { c.prompt_tokens += prompt_tokens; });
      const size_t nv = want_slot.empty() ? 0 : logits.size() / want_slot.size();
      int generated = 0;
      for (size_t j = 0; j < want_slot.size(); ++j) {
        const int s = want_slot[j];
        Slot& slot = lane.slots[s];
        if (!slot.decoding) {
          slot.decoding = true;
          slot.first = Clock::now();
        }
        TokenEvent tev;
        int32_t next = -1;
        const std::span<const float> lg(logits.data() + j * nv, nv);
        if (!slot.dec->Next(lg, ev.n_past(s), ev.n_ctx(), &tev, &next)) {
          Finish(lane, s, Status::Ok(), slot.dec->stop());
          continue;
        }
        ++generated;
        slot.next = next;
        if (slot.req->cb.on_token && !slot.req->cb.on_token(tev)) {
          Finish(lane, s, Status::Ok(), StopReason::kCallback);
          continue;
        }
        // Ended by this token (the limit or a full context): nothing more to feed.
        if (slot.dec->generated() >= slot.req->c.gen.max_tokens && slot.req->c.gen.max_tokens >= 0)
          Finish(lane, s, Status::Ok(), StopReason::kMaxTokens);
        else if (ev.n_past(s) >= ev.n_ctx())
          Finish(lane, s, Status::Ok(), StopReason::kContextFull);
      }
      counters_.Generated(generated);
    }
  }

  ServiceOptions opts_;
  std::vector<Lane> lanes_;
  uint64_t admitted_ = 0;  // under mu_
};

}  // namespace

StatusOr<std::unique_ptr<Service>> OpenBatchService(const std::string& path,
                                                    const ServiceOptions& o) {
  auto e = OpenLocalBatch(path, o);
  if (!e.ok()) return e.status();
  std::vector<std::unique_ptr<BatchEvaluator>> lanes;
  lanes.push_back(std::move(*e));
  return BatchService::Start(std::move(lanes), o);
}

StatusOr<std::unique_ptr<Service>> StartBatchService(
    std::vector<std::unique_ptr<BatchEvaluator>> lanes, const ServiceOptions& o) {
  return BatchService::Start(std::move(lanes), o);
}

StatusOr<std::unique_ptr<BatchEvaluator>> OpenLocalBatch(const std::string& path,
                                                         const ServiceOptions& o) {
  if (o.parallel < 1 || o.parallel > 256)
    return Status::InvalidArgument("--parallel " + std::to_string(o.parallel) +
                                   " is outside 1-256");
  return LocalBatch::Open(path, o);
}

}  // namespace ggswarm::runtime
