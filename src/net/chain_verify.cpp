#include "net/chain_verify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ggswarm::net {
namespace {

// max |a - b| / max(1, max |a|).
double Difference(const float* a, const std::vector<float>& b) {
  double d = 0, scale = 1;
  for (size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(a[i])));
  }
  return d / scale;
}

}  // namespace

ChainVerifier::ChainVerifier(const ChainOptions& o, int n_ctx, int n_vocab)
    : o_(o), n_ctx_(n_ctx), n_vocab_(n_vocab), checked_once_(o.n_seq, false), rng_(o.verify_seed) {}

ChainVerifier::~ChainVerifier() = default;

void ChainVerifier::Log(const std::string& s) const {
  if (o_.log) o_.log(s);
}

void ChainVerifier::Reset(int seq) {
  for (Checker& k : checkers_) k.chain->Reset(seq);
  checked_once_[seq] = false;
}

void ChainVerifier::Truncate(int seq, int n) {
  for (Checker& k : checkers_) k.chain->Truncate(seq, n);
}

Status ChainVerifier::Verify(std::span<const ChainItem> items, const std::vector<float>& logits,
                             const std::vector<SwarmChain::Hop>& route,
                             const std::function<std::vector<int32_t>(int)>& tokens, bool* redo,
                             size_t* failed) {
  route_ = &route;
  tokens_ = &tokens;
  size_t row = 0;
  for (const ChainItem& it : items) {
    if (!it.logits) continue;
    const float* p = logits.data() + row++ * static_cast<size_t>(n_vocab_);
    std::uniform_real_distribution<double> u(0, 1);
    const bool first = !checked_once_[it.seq];
    if (!first && u(rng_) >= o_.verify_fraction) continue;
    checked_once_[it.seq] = true;
    std::vector<size_t> ranges;
    if (first) {
      for (size_t r = 0; r < route.size(); ++r) ranges.push_back(r);
    } else {
      ranges.push_back(next_range_++ % route.size());
    }
    for (size_t r : ranges) {
      GGSWARM_RETURN_IF_ERROR(CheckRange(r, it.seq, p, redo));
      if (*redo) {
        *failed = r;
        return Status::Ok();
      }
    }
  }
  return Status::Ok();
}

// A chain like the checked one but with another stage for layers [first, end): the stages to
// avoid and the checked chain's stages preferred everywhere else, so that the two differ in
// that range only. NotFound when no other stage serves it.
StatusOr<ChainVerifier::Checker> ChainVerifier::MakeChecker(int first, int end,
                                                            const std::set<std::string>& avoid) {
  ChainOptions co = o_;
  co.verify_fraction = 0;
  co.log = nullptr;
  co.avoid.assign(avoid.begin(), avoid.end());
  co.avoid.insert(co.avoid.end(), banned_.begin(), banned_.end());
  co.prefer.clear();
  for (const SwarmChain::Hop& h : *route_)
    if (!avoid.count(h.address)) co.prefer.push_back(h.address);
  co.n_ctx = n_ctx_;
  auto c = SwarmChain::Connect(co);
  if (!c.ok()) return c.status();
  Checker k;
  k.first = first;
  k.end = end;
  for (const SwarmChain::Hop& h : (*c)->Route())
    if (h.first_layer <= first && first < h.end_layer) k.stage = h.address;
  if (avoid.count(k.stage)) return Status::NotFound("no other stage serves those layers");
  k.chain = std::move(*c);
  return k;
}

// Feeds checker `c` the tokens of `seq` it has not seen (in batches of the stages' size) and
// leaves the logits of the last in `out`.
Status ChainVerifier::CatchUp(Checker& c, int seq, std::vector<float>* out) {
  const std::vector<int32_t> t = (*tokens_)(seq);
  if (c.chain->n_past(seq) > static_cast<int>(t.size())) c.chain->Reset(seq);
  const size_t n_batch = static_cast<size_t>(c.chain->max_batch());
  for (size_t at = static_cast<size_t>(c.chain->n_past(seq)); at < t.size(); at += n_batch) {
    const size_t n = std::min(n_batch, t.size() - at);
    const ChainItem item{seq, std::span<const int32_t>(t).subspan(at, n), at + n == t.size()};
    GGSWARM_RETURN_IF_ERROR(c.chain->Step(std::span<const ChainItem>(&item, 1), out));
  }
  return Status::Ok();
}

// Checks the logits `p` that the chain gave sequence `seq` (its tokens so far) against a
// chain with another stage for the layers of hop `r`. On a disagreement a third stage
// decides: the one of the two it disagrees with is banned. *redo: the checked chain's stage
// was banned, and the step must be done again on a new chain.
Status ChainVerifier::CheckRange(size_t r, int seq, const float* p, bool* redo) {
  const SwarmChain::Hop& hop = (*route_)[r];
  const std::string mine = hop.address;
  const int first = hop.first_layer, end = hop.end_layer;
  const std::string what = "layers " + std::to_string(first) + "-" + std::to_string(end - 1);
  // The least recently used checker of this range, or a new one with a stage none of them
  // has, so that every stage of the range takes turns.
  std::set<std::string> avoid = {mine};
  Checker* c = nullptr;
  for (Checker& k : checkers_)
    if (k.first == first && k.end == end && k.stage != mine && !banned_.count(k.stage)) {
      avoid.insert(k.stage);
      if (!c || k.used < c->used) c = &k;
    }
  if (!no_more_.count(what)) {
    auto made = MakeChecker(first, end, avoid);
    if (made.ok()) {
      checkers_.push_back(std::move(*made));
      c = &checkers_.back();
    } else {
      no_more_.insert(what);
    }
  }
  if (!c) {
    if (unchecked_.insert(what).second) Log(what + " have no stage but " + mine + ": not checked");
    return Status::Ok();
  }
  c->used = ++checks_;
  std::vector<float> q;
  if (Status st = CatchUp(*c, seq, &q); !st.ok()) {
    Log("checking " + what + " on " + c->stage + " failed (" + st.message() + "): skipped");
    DropChecker(c->stage);
    return Status::Ok();
  }
  const double d = Difference(p, q);
  if (d <= kVerifyTolerance) return Status::Ok();
  // Two stages disagree: a third decides.
  const std::string theirs = c->stage;
  char diff[64];
  std::snprintf(diff, sizeof diff, "%.3g", d);
  Log(what + ": " + mine + " and " + theirs + " disagree (max |Δ logit| " + diff +
      " of the largest): asking a third stage");
  auto ref = MakeChecker(first, end, {mine, theirs});
  if (!ref.ok())
    return Status::Corruption("stages " + mine + " and " + theirs + ", both serving " + what +
                              ", disagree (max |Δ logit| " + diff +
                              " of the largest) and no third stage serves those layers to "
                              "say which one is right");
  checkers_.push_back(std::move(*ref));
  Checker& z = checkers_.back();
  z.used = ++checks_;
  std::vector<float> zq;
  GGSWARM_RETURN_IF_ERROR(CatchUp(z, seq, &zq));
  const bool with_mine = Difference(p, zq) <= kVerifyTolerance;
  const bool with_theirs = Difference(zq.data(), q) <= kVerifyTolerance;
  if (with_theirs && !with_mine) {
    Ban(mine, what, theirs, z.stage);
    *redo = true;
  } else if (with_mine && !with_theirs) {
    Ban(theirs, what, mine, z.stage);
  } else {
    return Status::Corruption("stages " + mine + ", " + theirs + " and " + z.stage +
                              ", all serving " + what + ", disagree with each other");
  }
  return Status::Ok();
}

void ChainVerifier::Ban(const std::string& stage, const std::string& what, const std::string& a,
                        const std::string& b) {
  Log("stage " + stage + " (" + what + ") disagrees with " + a + " and " + b +
      ": banned for this session");
  banned_.insert(stage);
  DropChecker(stage);
  no_more_.clear();
}

void ChainVerifier::DropChecker(const std::string& stage) {
  checkers_.erase(std::remove_if(checkers_.begin(), checkers_.end(),
                                 [&](const Checker& k) { return k.stage == stage; }),
                  checkers_.end());
}

}  // namespace ggswarm::net
