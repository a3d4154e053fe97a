// Finding a model's stages, for a swarm chain (net/stage_client.cpp) and ListStages: the
// entry peer's Lookup (or any peer seen before it, when it is gone), or the stages announced
// on the BitTorrent DHT under the model's key that answer Hello with that model; the calls'
// credentials (token, TLS CA) and channels; and what the lookups learnt: the addresses seen,
// and those found dead, which a DHT lookup leaves out. Internal to net/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/stage_client.h"
#include "net/stage_hello.h"
#include "stage.grpc.pb.h"

namespace ggswarm::net {

// The largest message a stage call sends or takes (a batch's hidden states or logits).
constexpr int kMaxMessage = 512 << 20;

// "CODE: message", for logs and errors.
std::string StatusText(const grpc::Status& s);

struct StageDirectory {
  ChainOptions o;
  std::string model_id;        // once known, what a lookup asks for (else o.model)
  std::set<std::string> dead;  // addresses that stopped answering
  std::set<std::string> seen;  // every address a lookup returned
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();

  void Log(const std::string& s) const;
  // The CA of the stages' certificates, when they speak TLS ("": plain).
  Status UseTls(const std::string& ca_file);
  std::unique_ptr<stage::v1::Stage::Stub> Stub(const std::string& address) const;
  // A call's deadline, `seconds` from now, and the token.
  void Prepare(grpc::ClientContext* ctx, double seconds) const;
  // Hello to every one of `addresses` at once (net/stage_hello.h).
  std::vector<HelloAnswer> AskHellos(const std::vector<std::string>& addresses,
                                     const EnoughFn& enough = nullptr) const;
  // Where the stages are looked up, for messages.
  std::string Where() const;
  // Every range of the model that the entry peer (or, when it is gone, any peer seen
  // before) knows of; with dht://, that the DHT knows of (all of them, or, for a chain,
  // those that answer soon enough: DhtLookup).
  StatusOr<std::vector<stage::v1::ServedRange>> Lookup(bool all = false);

 private:
  // Every stage announced on the DHT under the model's key that answers Hello with that
  // model (asked all at once); an announcement that answers with another model, or not at
  // all, is left out. Unless `all`, the answers are not waited for past the moment they
  // cover the model's layers by as long again as that took (kStragglerS to
  // kStragglerMaxS): a stage slower than that would not be picked for its latency, and
  // announcements of hosts that have gone silent (kept for up to 45 minutes) would
  // otherwise hold every rebuild for the whole Hello deadline.
  StatusOr<std::vector<stage::v1::ServedRange>> DhtLookup(bool all);
};

}  // namespace ggswarm::net
