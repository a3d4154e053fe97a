// Serving many sequences (runtime/service.h): a sequence decoded in a batch with others
// gets exactly the tokens it gets alone through Engine and Generate; slots, the queue,
// cancellation and refusals behave as documented.
#include "runtime/service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <random>

#include "convert/synth.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "test_util.h"

namespace ggswarm::runtime {
namespace {

using ::ggswarm::testing::TempDir;
using ::ggswarm::testing::WaitUntil;

std::string SynthModel(const TempDir& dir, const std::string& type) {
  const std::string path = dir.path() + "/" + type + ".gguf";
  SynthOptions so{*FindPreset("tiny"), *ParseTypeMix(type), 5, "t"};
  EXPECT_TRUE(Synthesize(so, path, false).ok());
  return path;
}

// Prompts of several lengths (random ids past the control tokens, after BOS).
std::vector<std::vector<int32_t>> Prompts(int n_vocab) {
  std::mt19937 rng(17);
  std::vector<std::vector<int32_t>> ps;
  for (int len : {1, 5, 40, 100, 3, 17, 60, 9}) {
    std::vector<int32_t> p = {1};
    for (int i = 0; i < len; ++i) p.push_back(3 + static_cast<int32_t>(rng() % (n_vocab - 3)));
    ps.push_back(p);
  }
  return ps;
}

struct Collected {
  std::mutex mu;
  std::vector<int32_t> tokens;
  std::string text;
  bool done = false;
  Outcome outcome;
};

Callbacks Collect(Collected* c, int stop_after = -1) {
  return {[c, stop_after](const TokenEvent& ev) {
            std::lock_guard<std::mutex> lock(c->mu);
            if (ev.token >= 0) c->tokens.push_back(ev.token);
            c->text += ev.text;
            return stop_after < 0 || static_cast<int>(c->tokens.size()) < stop_after;
          },
          [c](const Outcome& o) {
            std::lock_guard<std::mutex> lock(c->mu);
            c->outcome = o;
            c->done = true;
          }};
}

bool Done(Collected& c) {
  std::lock_guard<std::mutex> lock(c.mu);
  return c.done;
}

// Greedy, max_tokens tokens whatever comes.
GenerateOptions Greedy(int max_tokens) {
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.ignore_eos = true;
  g.sampling.temperature = 0;
  return g;
}

// The tokens `engine` generates for prompt p on its own, from an empty cache.
std::vector<int32_t> Alone(Engine& engine, const std::vector<int32_t>& p,
                           const GenerateOptions& g) {
  engine.Reset();
  auto r = Generate(engine, p, g);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r->tokens : std::vector<int32_t>{};
}

// Submits c and waits for its end, which must be a success.
std::unique_ptr<Collected> RunToEnd(Service& svc, const Completion& c) {
  auto got = std::make_unique<Collected>();
  EXPECT_TRUE(svc.Submit(c, Collect(got.get())).ok());
  EXPECT_TRUE(WaitUntil(60, [&] { return Done(*got); }));
  EXPECT_TRUE(got->outcome.status.ok());
  return got;
}

// Eight sequences at once — prompts from 2 to 101 tokens, in chunks of 96 beside the others'
// decoding, some long enough for the tiles (a chunk of 96) and the f32 attention — each give
// the tokens Engine and Generate give for that prompt alone: the row-dot types (Q8_0, Q4_K),
// a K-quant mix with Q6_K and a float type (F16).
TEST(Service, BatchedGreedyTokensAreEachSequencesAloneTokens) {
  TempDir dir;
  for (const std::string type : {"Q8_0", "Q4_K_M", "F16"}) {
    SCOPED_TRACE(type);
    const std::string path = SynthModel(dir, type);
    auto engine = Engine::Open(path, {.threads = 2, .n_ctx = 256, .n_batch = 96});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    const auto prompts = Prompts((*engine)->config().n_vocab);
    GenerateOptions g;
    g.max_tokens = 20;
    g.ignore_eos = true;
    g.sampling.temperature = 0;
    std::vector<std::vector<int32_t>> alone;
    for (const auto& p : prompts) {
      (*engine)->Reset();
      auto r = Generate(**engine, p, g);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      alone.push_back(r->tokens);
    }
    auto svc = OpenBatchService(path, {.threads = 2, .n_ctx = 256, .parallel = 8, .n_batch = 96});
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    std::vector<Collected> got(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i)
      ASSERT_TRUE((*svc)->Submit({prompts[i], g}, Collect(&got[i])).ok());
    ASSERT_TRUE(WaitUntil(120, [&] {
      for (auto& c : got)
        if (!Done(c)) return false;
      return true;
    }));
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(got[i].tokens, alone[i])
          << "prompt " << i << " (" << prompts[i].size() << " tokens)";
      EXPECT_TRUE(got[i].outcome.status.ok());
      EXPECT_EQ(got[i].outcome.stop, StopReason::kMaxTokens);
      EXPECT_EQ(got[i].outcome.generated, 20);
      EXPECT_EQ(got[i].outcome.prompt_tokens, static_cast<int>(prompts[i].size()));
    }
    const ServiceStats st = (*svc)->Stats();
    EXPECT_EQ(st.requests, prompts.size());
    EXPECT_EQ(st.generated_tokens, 20 * prompts.size());
    EXPECT_EQ(st.busy, 0);
  }
}

// More requests than slots wait their turn and then get their own tokens.
TEST(Service, RequestsBeyondTheSlotsWaitAndGetTheirOwnTokens) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto engine = Engine::Open(path, {.threads = 2, .n_ctx = 128});
  ASSERT_TRUE(engine.ok());
  const auto prompts = Prompts((*engine)->config().n_vocab);
  GenerateOptions g;
  g.max_tokens = 6;
  g.ignore_eos = true;
  g.sampling.temperature = 0;
  auto svc = OpenBatchService(path, {.threads = 2, .n_ctx = 128, .parallel = 2});
  ASSERT_TRUE(svc.ok());
  std::vector<Collected> got(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    ASSERT_TRUE((*svc)->Submit({prompts[i], g}, Collect(&got[i])).ok());
  ASSERT_TRUE(WaitUntil(120, [&] {
    for (auto& c : got)
      if (!Done(c)) return false;
    return true;
  }));
  for (size_t i = 0; i < prompts.size(); ++i) {
    (*engine)->Reset();
    auto r = Generate(**engine, prompts[i], g);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(got[i].tokens, r->tokens) << "prompt " << i;
  }
}

// A full queue refuses with Unavailable; a request stopped by its callback frees its slot
// for the one waiting. The first request holds its slot until the refusal has been seen (its
// callback stops it from then on, after at least 3 tokens): were it to stop on its own
// first, the waiting one would take the slot and the queue would have room again.
TEST(Service, AFullQueueRefusesAndAStoppedRequestFreesItsSlot) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto svc = OpenBatchService(path, {.threads = 1, .n_ctx = 256, .parallel = 1, .max_queue = 1});
  ASSERT_TRUE(svc.ok());
  GenerateOptions forever;
  forever.max_tokens = -1;
  forever.ignore_eos = true;
  forever.sampling.temperature = 0;
  Collected a, b, c;
  std::atomic<bool> refusal_seen{false};
  Callbacks hold = Collect(&a);
  hold.on_token = [&, inner = hold.on_token](const TokenEvent& ev) {
    inner(ev);
    std::lock_guard<std::mutex> lock(a.mu);
    return !refusal_seen || a.tokens.size() < 3;
  };
  ASSERT_TRUE((*svc)->Submit({{1, 10, 11}, forever}, hold).ok());
  GenerateOptions few = forever;
  few.max_tokens = 4;
  ASSERT_TRUE((*svc)->Submit({{1, 12}, few}, Collect(&b)).ok());
  auto refused = (*svc)->Submit({{1, 13}, few}, Collect(&c));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("waiting"), std::string::npos);
  refusal_seen = true;
  ASSERT_TRUE(WaitUntil(60, [&] { return Done(a) && Done(b); }));
  EXPECT_EQ(a.outcome.stop, StopReason::kCallback);
  EXPECT_GE(a.tokens.size(), 3u);
  EXPECT_EQ(b.outcome.stop, StopReason::kMaxTokens);
  EXPECT_EQ(b.tokens.size(), 4u);
  EXPECT_FALSE(Done(c));
  EXPECT_EQ((*svc)->Stats().refused, 1u);
}

// Ticket::Cancel ends a running request at the next step (here called while its second
// token is handed out); its sequence's cells serve the next request.
TEST(Service, CancelEndsARunningRequest) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto svc = OpenBatchService(path, {.threads = 1, .n_ctx = 256, .parallel = 1});
  ASSERT_TRUE(svc.ok());
  GenerateOptions forever;
  forever.max_tokens = -1;
  forever.ignore_eos = true;
  Collected a;
  std::mutex mu;
  std::shared_ptr<Ticket> ticket;
  Callbacks cb = Collect(&a);
  cb.on_token = [&, inner = cb.on_token](const TokenEvent& ev) {
    inner(ev);
    std::lock_guard<std::mutex> lock(mu);
    if (ticket && a.tokens.size() >= 2) ticket->Cancel();
    return true;
  };
  {
    std::lock_guard<std::mutex> lock(mu);  // the callbacks wait for the ticket
    auto t = (*svc)->Submit({{1, 10, 11}, forever}, cb);
    ASSERT_TRUE(t.ok());
    ticket = *t;
  }
  ASSERT_TRUE(WaitUntil(60, [&] { return Done(a); }));
  EXPECT_EQ(a.outcome.stop, StopReason::kCallback);
  EXPECT_EQ(a.outcome.generated, 2);
  // The slot is free again: a new request runs to its end.
  Collected b;
  GenerateOptions few = forever;
  few.max_tokens = 3;
  ASSERT_TRUE((*svc)->Submit({{1, 12}, few}, Collect(&b)).ok());
  ASSERT_TRUE(WaitUntil(60, [&] { return Done(b); }));
  EXPECT_EQ(b.tokens.size(), 3u);
}

// A sequence that reaches the context's end stops there ("context full"), with every
// position used.
TEST(Service, ASequenceStopsAtTheEndOfItsContext) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto svc = OpenBatchService(path, {.threads = 1, .n_ctx = 32, .parallel = 2});
  ASSERT_TRUE(svc.ok());
  GenerateOptions forever;
  forever.max_tokens = -1;
  forever.ignore_eos = true;
  Collected a;
  ASSERT_TRUE((*svc)->Submit({{1, 10, 11, 12}, forever}, Collect(&a)).ok());
  ASSERT_TRUE(WaitUntil(60, [&] { return Done(a); }));
  EXPECT_EQ(a.outcome.stop, StopReason::kContextFull);
  EXPECT_EQ(a.outcome.generated, 32 - 4 + 1);  // the last token is given, never fed
}

TEST(Service, RequestsThatCannotRunAreRefusedWithTheReason) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto svc = OpenBatchService(path, {.threads = 1, .n_ctx = 16, .parallel = 1});
  ASSERT_TRUE(svc.ok());
  Collected c;
  std::vector<int32_t> long_prompt(16, 5);
  auto r = (*svc)->Submit({long_prompt, {}}, Collect(&c));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("does not fit the context of 16"), std::string::npos);
  auto e = (*svc)->Submit({{}, {}}, Collect(&c));
  EXPECT_FALSE(e.ok());
  Completion lp{{1, 5}, {}};
  lp.logprobs = 21;
  EXPECT_FALSE((*svc)->Submit(lp, Collect(&c)).ok());
  Completion bad{{1, 5}, {}};
  bad.gen.sampling.temperature = -3;
  EXPECT_FALSE((*svc)->Submit(bad, Collect(&c)).ok());
  EXPECT_FALSE(OpenBatchService(path, {.parallel = 0}).ok());
  EXPECT_FALSE(OpenBatchService(dir.path() + "/absent.gguf", {}).ok());
}

// cache_prompt: a finished sequence's cache stays in its slot, and a request whose prompt
// begins with it goes to that slot and computes only the rest (a conversation's next turn
// repeats the last one and its answer). Against Generate on the whole prompt alone: the
// same tokens, with the number of reused tokens counted by hand — after a request for an
// unrelated prompt took the other slot, after a prompt that shares only the start (the
// cache cut back), for the same prompt again (all but its last token), and none when a
// request asks for no cache (which also leaves none behind).
TEST(Service, APromptThatBeginsWithASlotsCacheSkipsIt) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto engine = Engine::Open(path, {.threads = 2, .n_ctx = 128});
  ASSERT_TRUE(engine.ok());
  const GenerateOptions g = Greedy(6);
  auto alone = [&](const std::vector<int32_t>& p) { return Alone(**engine, p, g); };
  auto svc = OpenBatchService(path, {.threads = 2, .n_ctx = 128, .parallel = 2});
  ASSERT_TRUE(svc.ok());
  auto run = [&](const std::vector<int32_t>& p, bool cache = true) {
    Completion c{p, g};
    c.cache_prompt = cache;
    return RunToEnd(**svc, c);
  };
  const std::vector<int32_t> p1 = {1, 50, 60, 70, 80, 90, 100, 110, 120};
  auto a = run(p1);
  EXPECT_EQ(a->tokens, alone(p1));
  EXPECT_EQ(a->outcome.cached_tokens, 0);
  // Another conversation: the empty slot, not the first one's.
  const std::vector<int32_t> other = {1, 7, 8, 9, 10, 11};
  auto b = run(other);
  EXPECT_EQ(b->tokens, alone(other));
  EXPECT_EQ(b->outcome.cached_tokens, 0);
  // The next turn: p1, its answer and more. The answer's last token was never fed.
  std::vector<int32_t> p2 = p1;
  p2.insert(p2.end(), a->tokens.begin(), a->tokens.end());
  p2.insert(p2.end(), {200, 210, 220});
  auto c = run(p2);
  EXPECT_EQ(c->tokens, alone(p2));
  EXPECT_EQ(c->outcome.cached_tokens, static_cast<int>(p1.size() + a->tokens.size() - 1));
  EXPECT_EQ(c->outcome.prompt_tokens, static_cast<int>(p2.size()));
  // Shares p2's first 12 tokens, then differs: the cache is cut back to them.
  std::vector<int32_t> p3(p2.begin(), p2.begin() + 12);
  p3.insert(p3.end(), {33, 44, 55, 66, 77, 88, 99});
  auto d = run(p3);
  EXPECT_EQ(d->tokens, alone(p3));
  EXPECT_EQ(d->outcome.cached_tokens, 12);
  auto e = run(p3);  // the same prompt again: all but its last token
  EXPECT_EQ(e->tokens, d->tokens);
  EXPECT_EQ(e->outcome.cached_tokens, static_cast<int>(p3.size()) - 1);
  // The other conversation again, without a cache: computed whole, and its slot's cache
  // forgotten — so the same request with a cache then finds none (it would find 5 tokens).
  auto f = run(other, false);
  EXPECT_EQ(f->tokens, b->tokens);
  EXPECT_EQ(f->outcome.cached_tokens, 0);
  auto h = run(other);
  EXPECT_EQ(h->tokens, b->tokens);
  EXPECT_EQ(h->outcome.cached_tokens, 0);
  auto i = run(other);
  EXPECT_EQ(i->outcome.cached_tokens, static_cast<int>(other.size()) - 1);
  // A prompt that shares less than half with every slot (2 of 7 tokens with other's, the
  // BOS with p3's) is computed whole, as alone: a cache of a token or two would change its
  // rounding for nothing.
  const std::vector<int32_t> few = {1, 7, 300, 301, 302, 303, 304};
  auto j = run(few);
  EXPECT_EQ(j->tokens, alone(few));
  EXPECT_EQ(j->outcome.cached_tokens, 0);
}

// A model with a sliding window whose local layers keep only their window (n_batch 4: 4 + 4
// - 1 cells): a next turn goes on from the slot's cache, and a prompt that goes back to
// where the window's keys are gone is computed whole — each with the tokens it gets alone.
TEST(Service, ASlidingWindowsCacheGoesOnOrStartsAgain) {
  TempDir dir;
  const std::string path = dir.path() + "/gemma.gguf";
  SynthOptions so{*FindPreset("tiny"), *ParseTypeMix("Q8_0"), 5, "t"};
  so.arch = "gemma3";
  so.vocab = "gemma";
  so.shape.n_swa = 4;
  so.shape.swa_pattern = 2;
  ASSERT_TRUE(Synthesize(so, path, false).ok());
  auto engine = Engine::Open(path, {.threads = 2, .n_ctx = 128, .n_batch = 4});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const GenerateOptions g = Greedy(6);
  auto alone = [&](const std::vector<int32_t>& p) { return Alone(**engine, p, g); };
  auto svc = OpenBatchService(path, {.threads = 2, .n_ctx = 128, .parallel = 1, .n_batch = 4});
  ASSERT_TRUE(svc.ok());
  auto run = [&](const std::vector<int32_t>& p) { return RunToEnd(**svc, {p, g}); };
  std::vector<int32_t> p1 = {2};
  for (int i = 0; i < 20; ++i) p1.push_back(40 + 3 * i);
  auto a = run(p1);
  EXPECT_EQ(a->tokens, alone(p1));
  std::vector<int32_t> p2 = p1;  // the next turn
  p2.insert(p2.end(), a->tokens.begin(), a->tokens.end());
  p2.insert(p2.end(), {200, 210, 220});
  auto b = run(p2);
  EXPECT_EQ(b->tokens, alone(p2));
  EXPECT_EQ(b->outcome.cached_tokens, static_cast<int>(p1.size() + a->tokens.size() - 1));
  std::vector<int32_t> p3(p2.begin(), p2.begin() + 16);  // back to 16 of 30 positions
  p3.insert(p3.end(), {33, 44, 55});
  auto c = run(p3);
  EXPECT_EQ(c->tokens, alone(p3));
  EXPECT_EQ(c->outcome.cached_tokens, 0);
}

// log softmax by hand: logits (0, ln 2, ln 5) have probabilities 1/8, 2/8, 5/8.
TEST(Service, LogprobsAreTheLogSoftmax) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(5.0f)};
  std::vector<TokenLogprob> top;
  EXPECT_NEAR(Logprob(logits, 1, 2, &top), std::log(2.0 / 8), 1e-6);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].token, 2);
  EXPECT_NEAR(top[0].logprob, std::log(5.0 / 8), 1e-6);
  EXPECT_EQ(top[1].token, 1);
}

// Requests spread over several lanes (as a swarm's micro-batches are), more than they have
// slots: every one gets Generate's tokens.
TEST(Service, LanesGiveGeneratesTokens) {
  TempDir dir;
  const std::string path = SynthModel(dir, "Q8_0");
  auto engine = Engine::Open(path, {.threads = 2, .n_ctx = 128});
  ASSERT_TRUE(engine.ok());
  GenerateOptions g;
  g.max_tokens = 8;
  g.ignore_eos = true;
  g.sampling.temperature = 0;
  const std::vector<std::vector<int32_t>> prompts = {{1, 20, 30, 40}, {1, 7}, {1, 99, 5, 6, 7, 8}};
  std::vector<GenerateResult> want;
  for (const auto& p : prompts) {
    (*engine)->Reset();
    auto w = Generate(**engine, p, g);
    ASSERT_TRUE(w.ok());
    want.push_back(*w);
  }
  std::vector<std::unique_ptr<BatchEvaluator>> lanes;
  for (int parallel : {1, 2}) {
    ServiceOptions o;
    o.threads = 1;
    o.n_ctx = 128;
    o.parallel = parallel;
    auto lane = OpenLocalBatch(path, o);
    ASSERT_TRUE(lane.ok()) << lane.status().ToString();
    lanes.push_back(std::move(*lane));
  }
  auto svc = StartBatchService(std::move(lanes), {});
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ((*svc)->parallel(), 3);
  std::vector<Collected> got(6);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_TRUE((*svc)->Submit({prompts[i % 3], g}, Collect(&got[i])).ok());
  ASSERT_TRUE(WaitUntil(120, [&] {
    for (Collected& c : got)
      if (!Done(c)) return false;
    return true;
  }));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i % 3].tokens) << i;
    EXPECT_EQ(got[i].text, want[i % 3].text) << i;
  }
}

}  // namespace
}  // namespace ggswarm::runtime
