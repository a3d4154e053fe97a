// Honest computation for a swarm chain (--verify-fraction): a chain's logits checked against
// chains that replace one of its stages with another serving the same layers. A stage that
// two others disagree with is banned; the chain (net/stage_client.cpp) then rebuilds itself
// without it and does the step again. See docs/pipeline.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/stage_client.h"

namespace ggswarm::net {

class ChainVerifier {
 public:
  // `o` is the checked chain's options (the checkers are made like it); n_ctx its positions
  // per sequence, n_vocab the logits per row.
  ChainVerifier(const ChainOptions& o, int n_ctx, int n_vocab);
  ~ChainVerifier();

  // After a step of the chain whose stages are `route` (in order): checks the logits of the
  // items that want them, each with the fraction's chance (and a sequence's first logits
  // always, on every range). tokens(seq) gives all of a sequence's tokens so far. *redo: the
  // stage at route[*failed] was banned, and the step must be done again without it.
  Status Verify(std::span<const ChainItem> items, const std::vector<float>& logits,
                const std::vector<SwarmChain::Hop>& route,
                const std::function<std::vector<int32_t>(int)>& tokens, bool* redo, size_t* failed);
  // The sequence starts anew, or keeps its first n positions (as the chain's own).
  void Reset(int seq);
  void Truncate(int seq, int n);

  const std::set<std::string>& banned() const { return banned_; }
  uint64_t checks() const { return checks_; }

 private:
  struct Checker {
    std::unique_ptr<SwarmChain> chain;
    int first = 0, end = 0;  // the range it checks
    std::string stage;       // its stage for that range
    uint64_t used = 0;       // when last used (a count of checks)
  };
  StatusOr<Checker> MakeChecker(int first, int end, const std::set<std::string>& avoid);
  Status CatchUp(Checker& c, int seq, std::vector<float>* out);
  Status CheckRange(size_t r, int seq, const float* p, bool* redo);
  void Ban(const std::string& stage, const std::string& what, const std::string& a,
           const std::string& b);
  void DropChecker(const std::string& stage);
  void Log(const std::string& s) const;

  ChainOptions o_;
  int n_ctx_, n_vocab_;
  // Of the Verify call under way: the chain's stages and its sequences' tokens.
  const std::vector<SwarmChain::Hop>* route_ = nullptr;
  const std::function<std::vector<int32_t>(int)>* tokens_ = nullptr;
  std::vector<Checker> checkers_;
  std::set<std::string> banned_;     // stages that disagreed with two others
  std::set<std::string> unchecked_;  // ranges with no other stage, said once
  std::set<std::string> no_more_;    // ranges whose every other stage has a checker
  std::vector<bool> checked_once_;   // each sequence's first logits were checked
  std::mt19937_64 rng_;
  uint64_t checks_ = 0;
  size_t next_range_ = 0;
};

}  // namespace ggswarm::net
