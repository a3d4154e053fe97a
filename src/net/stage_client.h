// The client side of pipelined inference: `swarm://HOST:PORT/MODEL`. It asks that peer which
// peers serve which layers of MODEL, builds a chain that covers every layer (the fastest
// answering replica of each range), opens a session on each stage and sends every batch of
// tokens through the chain. It remembers the batches it sent: when a stage stops answering
// it builds the chain again without it, replays the batches in the same order and shapes (so
// every cache is rebuilt bit for bit) and carries on, so the output is the same as without
// the failure.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "net/stage.h"
#include "tokenizer/tokenizer.h"

namespace ggswarm::net {

class DhtNode;

// How long a chain waits for a stage's Hello when it looks the swarm up or picks its stages;
// a stage that has not answered by then is taken for dead.
constexpr double kHelloDeadlineS = 2;
// A DHT lookup for a chain waits for the Hellos still out, once those that answered cover the
// model's layers, as long again as that took, at least kStragglerS and at most
// kStragglerMaxS (net/stage_hello.h).
constexpr double kStragglerS = 0.1, kStragglerMaxS = 0.5;

struct ChainOptions {
  std::string address;  // HOST:PORT of any peer (swarm://)
  std::string model;    // model id, id prefix or name; "" when the peer serves one model
  // dht://MODEL_ID: the stages are looked up on the BitTorrent DHT (net/dht.h), joined
  // through `dht_bootstrap`, and `model` is the model's full id. One node can serve several
  // chains (a server's lanes); one is started when none is given.
  bool dht = false;
  std::vector<std::string> dht_bootstrap;
  std::shared_ptr<DhtNode> dht_node;
  std::string token;
  std::string tls_ca;       // PEM file of the CA the stages' certificates come from; "": plain
  int n_ctx = 0;            // 0: the most every stage allows, capped at 4096
  int n_batch = 512;        // positions per Forward, as a local engine batches its prompt
  double deadline_s = 60;   // per call to a stage
  bool f16_hidden = false;  // send hidden states as f16 (half the bytes; not bit-exact)
  int max_recoveries = 8;   // chain rebuilds before giving up
  int n_seq = 1;            // sequences, each with its own session on every stage
  // Stage-to-stage push: each stage sends its output to the next itself and the last one's
  // logits come to the client (Await), rather than every hop going through the client.
  bool push = true;
  // Honest computation: the first logits of each sequence, and then this fraction of the
  // steps that want logits, are also computed by chains that replace one stage with another
  // serving the same layers, and compared (within kVerifyTolerance). A stage that disagrees
  // with two others is banned for the chain's life and routed around; see docs/pipeline.md.
  double verify_fraction = 0;
  uint64_t verify_seed = 0;         // of the draws of the steps to check
  std::vector<std::string> avoid;   // stages (HOST:PORT) never to use
  std::vector<std::string> prefer;  // stages to pick first among those serving a range
  std::string prefer_kernels;       // then stages whose ServedRange.kernels are these
  StageLogFn log;                   // notes on the chain and its recoveries
};

// "swarm://HOST:PORT/MODEL" → o->address and o->model; "dht://MODEL_ID" → o->dht and
// o->model; false when `uri` is neither.
bool ParseSwarmUri(const std::string& uri, ChainOptions* o);
// With o->dht, starts o->dht_node unless there is one (a node for several chains to share).
Status StartDht(ChainOptions* o);

// What a peer knows of the swarm: every stage of `model` ("" for all models) it has heard
// of, each asked directly whether it answers and how fast.
struct StageInfo {
  std::string model_id, model_name, address;
  int first_layer = 0, end_layer = 0, n_layer = 0;
  bool has_embedding = false, has_head = false;
  int sessions_free = 0, max_sessions = 0, open_sessions = 0;
  double busy = 0;      // the fraction of its last seconds it spent computing
  std::string kernels;  // ServedRange.kernels: stages with the same give the same bits
  bool answers = false;
  double rtt_ms = 0;
};
StatusOr<std::vector<StageInfo>> ListStages(const ChainOptions& o);
StatusOr<std::vector<StageInfo>> ListStages(const std::string& address, const std::string& model,
                                            const std::string& token,
                                            const std::string& tls_ca = "");

// Consecutive tokens of one of the chain's sequences in a step of several.
struct ChainItem {
  int seq = 0;
  std::span<const int32_t> tokens;
  bool logits = false;  // wants the logits of its last token
};

// The methods of runtime::Evaluator and runtime::BatchEvaluator, which api/ adapts it to
// (net sits beside runtime, not above it).
class SwarmChain {
 public:
  static StatusOr<std::unique_ptr<SwarmChain>> Connect(const ChainOptions& o);
  ~SwarmChain();
  const tokenizer::Tokenizer& tokenizer() const;
  int n_ctx() const;
  int n_seq() const;
  int max_batch() const;  // the most positions of one item of a Step (the stages' limit)
  int n_past(int seq = 0) const;
  // Feeds `tokens` at sequence 0's next positions (in batches of n_batch) and leaves the last
  // one's logits in `logits`.
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits);
  // One step of several sequences (each at most once, at most the stages' max_batch
  // positions each): every stage gets them in one ForwardMany, and the logits of the items
  // that want them come back one after another in the items' order.
  Status Step(std::span<const ChainItem> items, std::vector<float>* logits);
  void Reset(int seq = 0);  // the sequence's next step starts it anew
  // Keeps the sequence's first n positions (its stages cut their caches back at its next
  // step, and a rebuilt chain replays only those).
  void Truncate(int seq, int n);
  // The model's GGUF header (metadata, tensor table) as the first stage sent it.
  const gguf::GgufFile& header() const;
  // "A-B at HOST:PORT" for each stage, in order.
  std::vector<std::string> Describe() const;
  // The stages the chain goes through now, in order (safe to call from any thread, while
  // another steps the chain).
  struct Hop {
    std::string address;
    int first_layer = 0, end_layer = 0;
    std::string kernels;  // ServedRange.kernels
  };
  std::vector<Hop> Route() const;
  int recoveries() const;
  int checks() const;                       // comparisons made (--verify-fraction)
  std::vector<std::string> banned() const;  // stages banned for disagreeing
  const std::string& model_id() const;      // SHA-256 of the model's GGUF file
  struct Impl;

 private:
  SwarmChain() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ggswarm::net
