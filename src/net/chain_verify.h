// Honest computation for a swarm chain (--verify-fraction): a chain's logits checked against
// chains that replace one of its stages with another serving the same layers. A stage that
// two others disagree with is banned; the chain (net/stage_client.cpp) then rebuilds itself
// without it and does the step again. See docs/pipeline.md.
//
// A checker is fed a sequence's tokens in the batches the chain sent them in (a prompt's
// chunks as they were; single-token steps up to ExactRun of them at once), so that where
// its stage runs the same kernels as the checked one (ServedRange.kernels) the logits must
// be the same bits: any difference is a disagreement. Between stages with other kernels (AVX2
// and AVX-512, AMX or not), which round differently, kVerifyTolerance applies; so checkers
// (and the third stage that settles a disagreement) are taken from the stages that report
// the checked stage's kernels while there are any, and from the others only when there
// are none.
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
#include "gguf/gguf_file.h"
#include "model/ops.h"
#include "net/stage_client.h"

namespace ggswarm::net {

// Two computations of the same logits by different kernels agree when LogitDifference(a, b)
// <= kVerifyTolerance: each is held within model::kKernelLogitTolerance of the logits'
// range of a common truth (llama.cpp's, the scalar path's), so two honest ones are within
// twice that of each other. That covers a stage on another instruction set, and a checker
// that computes a batch in other pieces (each chunk's kernel is chosen by its length, docs/
// server.md). A perturbation below the bound goes unseen.
constexpr double kVerifyTolerance = 2 * model::kKernelLogitTolerance;

// max |a - b| over the logits, as a fraction of the smaller of the two ranges (max - min),
// so that a stage cannot loosen the bound by widening its own; infinite where a value is not
// finite in one and not the same in the other (a NaN must not compare as agreeing).
double LogitDifference(std::span<const float> a, std::span<const float> b);

// How many single-token steps of a sequence one run may replay and still give each token the
// bits it got alone, on any stage: the least of model::ExactBatch over the layers' matrices
// (kRowDotMaxTokens where every one has a row-dot type, else kTileMinTokens - 1).
int ExactRun(const gguf::GgufFile& header);

class ChainVerifier {
 public:
  // `o` is the checked chain's options (the checkers are made like it); n_ctx its positions
  // per sequence, n_vocab the logits per row.
  ChainVerifier(const ChainOptions& o, int n_ctx, int n_vocab, int exact_run);
  ~ChainVerifier();

  // After a step of the chain whose stages are `route` (in order): checks the logits of the
  // items that want them, each with the fraction's chance (and a sequence's first logits
  // always, on every range). history(seq) gives a sequence's batches so far, as sent. *redo:
  // the stage at route[*failed] was banned, and the step must be done again without it.
  using History = std::function<const std::vector<std::vector<int32_t>>&(int)>;
  Status Verify(std::span<const ChainItem> items, const std::vector<float>& logits,
                const std::vector<SwarmChain::Hop>& route, const History& history, bool* redo,
                size_t* failed);
  // The sequence starts anew, or keeps its first n positions (as the chain's own; its last
  // batch cut short was computed whole, so from then on its checks allow kVerifyTolerance).
  void Reset(int seq);
  void Truncate(int seq, int n);

  const std::set<std::string>& banned() const { return banned_; }
  uint64_t checks() const { return checks_; }

 private:
  struct Checker {
    std::unique_ptr<SwarmChain> chain;
    int first = 0, end = 0;  // the range it checks
    std::string stage;       // its stage for that range
    std::string kernels;     // that stage's kernels
    uint64_t used = 0;       // when last used (a count of checks)
  };
  StatusOr<Checker> MakeChecker(int first, int end, const std::set<std::string>& avoid,
                                const std::string& kernels);
  Status CatchUp(Checker& c, int seq, std::vector<float>* out, bool* same_batches);
  Status CheckRange(size_t r, int seq, const float* p, bool* redo);
  // Logits of stages with kernels ka and kb agree: the same bits, or within kVerifyTolerance.
  bool Agree(const float* a, const std::string& ka, const std::vector<float>& b,
             const std::string& kb, int seq, double* d) const;
  void Ban(const std::string& stage, const std::string& what, const std::string& a,
           const std::string& b);
  void DropChecker(const std::string& stage);
  void Log(const std::string& s) const;

  ChainOptions o_;
  int n_ctx_, n_vocab_, exact_run_;
  // Of the Verify call under way: the chain's stages and its sequences' batches.
  const std::vector<SwarmChain::Hop>* route_ = nullptr;
  const History* history_ = nullptr;
  std::vector<Checker> checkers_;
  std::set<std::string> banned_;     // stages that disagreed with two others
  std::set<std::string> unchecked_;  // ranges with no other stage, said once
  std::set<std::string> no_more_;    // ranges whose every other stage has a checker
  std::vector<bool> checked_once_;   // each sequence's first logits were checked
  std::vector<bool> cut_;            // a sequence was truncated inside a batch
  std::mt19937_64 rng_;
  uint64_t checks_ = 0;
  size_t next_range_ = 0;
};

}  // namespace ggswarm::net
