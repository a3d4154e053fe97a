#include "net/chain_verify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "model/ops.h"
#include "net/chain_plan.h"

namespace ggswarm::net {

double LogitDifference(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double d = 0;
  float alo = std::numeric_limits<float>::infinity(), ahi = -alo, blo = alo, bhi = -alo;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      if (std::memcmp(&a[i], &b[i], sizeof(float)) == 0) continue;
      return std::numeric_limits<double>::infinity();
    }
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
    alo = std::min(alo, a[i]), ahi = std::max(ahi, a[i]);
    blo = std::min(blo, b[i]), bhi = std::max(bhi, b[i]);
  }
  if (d == 0) return 0;
  const double range = std::min(static_cast<double>(ahi) - alo, static_cast<double>(bhi) - blo);
  return range > 0 ? d / range : std::numeric_limits<double>::infinity();
}

int ExactRun(const gguf::GgufFile& header) {
  int run = model::kRowDotMaxTokens;
  for (const gguf::TensorInfo& t : header.tensors)
    if (t.shape.size() >= 2 && t.name.rfind("blk.", 0) == 0)
      run = std::min(run, model::ExactBatch(t.type));
  return run;
}

ChainVerifier::ChainVerifier(const ChainOptions& o, int n_ctx, int n_vocab, int exact_run)
    : o_(o),
      n_ctx_(n_ctx),
      n_vocab_(n_vocab),
      exact_run_(std::max(1, exact_run)),
      checked_once_(o.n_seq, false),
      cut_(o.n_seq, false),
      rng_(o.verify_seed) {}

ChainVerifier::~ChainVerifier() = default;

void ChainVerifier::Log(const std::string& s) const {
  if (o_.log) o_.log(s);
}

void ChainVerifier::Reset(int seq) {
  for (Checker& k : checkers_) k.chain->Reset(seq);
  checked_once_[seq] = false;
  cut_[seq] = false;
}

void ChainVerifier::Truncate(int seq, int n) {
  for (Checker& k : checkers_) k.chain->Truncate(seq, n);
  cut_[seq] = true;
}

bool ChainVerifier::Agree(const float* a, const std::string& ka, const std::vector<float>& b,
                          const std::string& kb, int seq, double* d) const {
  *d = LogitDifference({a, b.size()}, b);
  if (!ka.empty() && ka == kb && !cut_[seq])
    return std::memcmp(a, b.data(), b.size() * sizeof(float)) == 0;
  return *d <= kVerifyTolerance;
}

Status ChainVerifier::Verify(std::span<const ChainItem> items, const std::vector<float>& logits,
                             const std::vector<SwarmChain::Hop>& route, const History& history,
                             bool* redo, size_t* failed) {
  route_ = &route;
  history_ = &history;
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
// that range only; for the range, a stage running `kernels` first. NotFound when no other
// stage serves it.
StatusOr<ChainVerifier::Checker> ChainVerifier::MakeChecker(int first, int end,
                                                            const std::set<std::string>& avoid,
                                                            const std::string& kernels) {
  ChainOptions co = o_;
  co.prefer_kernels = kernels;
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
  // Its kernels count (for comparing bits) only when it differs from the checked chain in
  // that one stage: the same hops elsewhere, that stage over the same layers.
  bool same_elsewhere = true;
  for (const SwarmChain::Hop& h : (*c)->Route()) {
    if (h.first_layer <= first && first < h.end_layer) {
      k.stage = h.address;
      k.kernels = h.kernels;
      same_elsewhere = same_elsewhere && h.first_layer == first && h.end_layer == end;
      continue;
    }
    bool found = false;
    for (const SwarmChain::Hop& g : *route_)
      found = found || (g.address == h.address && g.first_layer == h.first_layer &&
                        g.end_layer == h.end_layer);
    same_elsewhere = same_elsewhere && found;
  }
  if (!same_elsewhere) k.kernels.clear();
  if (avoid.count(k.stage)) return Status::NotFound("no other stage serves those layers");
  k.chain = std::move(*c);
  return k;
}

// Feeds checker `c` the batches of `seq` it has not seen, as the chain sent them (runs of up
// to exact_run_ single-token steps as one: ReplayCalls), and leaves the logits of the last in
// `out`. A batch longer than the checker's stages take goes in pieces, and *same_batches is then
// false.
Status ChainVerifier::CatchUp(Checker& c, int seq, std::vector<float>* out, bool* same_batches) {
  const std::vector<std::vector<int32_t>>& h = (*history_)(seq);
  // The first batch the checker has not seen; from the start when it stopped inside one.
  size_t b = 0;
  int at = 0;
  while (b < h.size() && at < c.chain->n_past(seq)) at += static_cast<int>(h[b++].size());
  if (at != c.chain->n_past(seq)) {
    c.chain->Reset(seq);
    b = 0;
  }
  std::vector<int> sizes;
  std::vector<int32_t> tokens;
  for (size_t i = b; i < h.size(); ++i) {
    sizes.push_back(static_cast<int>(h[i].size()));
    tokens.insert(tokens.end(), h[i].begin(), h[i].end());
  }
  const int most = std::max(1, c.chain->max_batch());
  for (const int n : sizes)
    if (n > most) *same_batches = false;
  size_t sent = 0;
  for (const int call : ReplayCalls(sizes, exact_run_, most)) {
    const ChainItem item{seq, std::span<const int32_t>(tokens).subspan(sent, call),
                         sent + call == tokens.size()};
    sent += call;
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
  // A checker whose stage runs the checked one's kernels, whose logits must be the same
  // bits, before one compared within kVerifyTolerance; among those, a new stage while there
  // is one (MakeChecker picks the same kernels first), else the least recently used, so that
  // every such stage of the range takes turns.
  auto exact = [&](const Checker& k) { return !hop.kernels.empty() && k.kernels == hop.kernels; };
  std::set<std::string> avoid = {mine};
  int c = -1;
  for (size_t i = 0; i < checkers_.size(); ++i) {
    const Checker& k = checkers_[i];
    if (k.first != first || k.end != end || k.stage == mine || banned_.count(k.stage)) continue;
    avoid.insert(k.stage);
    if (c < 0) {
      c = static_cast<int>(i);
      continue;
    }
    const Checker& b = checkers_[static_cast<size_t>(c)];
    if (exact(k) != exact(b) ? exact(k) : k.used < b.used) c = static_cast<int>(i);
  }
  if (!no_more_.count(what)) {
    auto made = MakeChecker(first, end, avoid, hop.kernels);
    if (made.ok()) {
      const bool better = c < 0 || exact(*made) || !exact(checkers_[static_cast<size_t>(c)]);
      // Kept either way: it stands in when the stages of the checked kernels are banned.
      checkers_.push_back(std::move(*made));
      if (better) {
        c = static_cast<int>(checkers_.size()) - 1;
      } else {
        no_more_.insert(what);  // no stage of those kernels is left to add
      }
    } else {
      no_more_.insert(what);
    }
  }
  if (c < 0) {
    if (unchecked_.insert(what).second) Log(what + " have no stage but " + mine + ": not checked");
    return Status::Ok();
  }
  Checker* const k = &checkers_[static_cast<size_t>(c)];
  k->used = ++checks_;
  std::vector<float> q;
  bool same = true;
  if (Status st = CatchUp(*k, seq, &q, &same); !st.ok()) {
    Log("checking " + what + " on " + k->stage + " failed (" + st.message() + "): skipped");
    DropChecker(k->stage);
    return Status::Ok();
  }
  double d = 0;
  const std::string mine_kernels = same ? hop.kernels : "", theirs_kernels = k->kernels;
  if (Agree(p, mine_kernels, q, theirs_kernels, seq, &d)) return Status::Ok();
  // Two stages disagree: a third decides.
  const std::string theirs = k->stage;
  char diff[64];
  std::snprintf(diff, sizeof diff, "%.3g", d);
  Log(what + ": " + mine + " and " + theirs + " disagree (max |Δ logit| " + diff +
      " of the logits' range): asking a third stage");
  auto ref = MakeChecker(first, end, {mine, theirs}, hop.kernels);
  if (!ref.ok())
    return Status::Corruption("stages " + mine + " and " + theirs + ", both serving " + what +
                              ", disagree (max |Δ logit| " + diff +
                              " of the logits' range) and no third stage serves those layers to "
                              "say which one is right");
  checkers_.push_back(std::move(*ref));
  Checker& z = checkers_.back();
  z.used = ++checks_;
  std::vector<float> zq;
  GGSWARM_RETURN_IF_ERROR(CatchUp(z, seq, &zq, &same));
  // (`same` false: some batch went in pieces to a checker, so no comparison asks for bits.)
  const std::string z_kernels = same ? z.kernels : "";
  double dz = 0;
  const bool with_mine = Agree(p, mine_kernels, zq, z_kernels, seq, &dz);
  const bool with_theirs = Agree(zq.data(), z_kernels, q, same ? theirs_kernels : "", seq, &dz);
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
