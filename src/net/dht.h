// A directory of stages on the BitTorrent DHT (BEP 5), through libtorrent's DHT node. A stage
// announces its gRPC port under keys derived from the model's id — one for the whole model,
// one for the layer its range starts at — and a client asks the DHT for the endpoints under a
// key, then asks each endpoint (Hello) what it serves: the DHT holds only addresses, never
// claims, so an announcement that does not answer Hello with the right model is ignored.
// DHT nodes drop an announcement that is not refreshed (libtorrent: after 45 minutes).
//
// BEP 5 rather than BEP 44 items: get_peers keeps many endpoints per key (every replica of a
// range), each stored from its own announce with no key pair to manage, and expires them by
// itself; a BEP 44 item holds one value of at most 1000 bytes per key and would need a
// writer's key pair (mutable) or be unfindable by name (immutable).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/session.h"

namespace ggswarm::net {

using DhtKey = std::array<uint8_t, 20>;

// SHA-1 of "ggswarm stages " + the model's id (SHA-256 of its GGUF file, hex): every stage of
// the model announces here.
DhtKey ModelKey(const std::string& model_id);
// SHA-1 of "ggswarm stages " + the model's id + " from layer " + `first_layer`: the stages
// whose range starts there (what a stage looks up to find the stages after it).
DhtKey LayerKey(const std::string& model_id, int first_layer);

// GetPeers is done when no reply has come for this long after the last one. A lookup that
// meets nodes that have gone (every DHT has some) waits for each up to libtorrent's short
// timeout of 1 s before it asks the next: replies that come after such a wait still count.
constexpr double kDhtQuietS = 1.5;
// GetPeers gives up this long after it asked (a key nobody announced gets no reply at all).
constexpr double kDhtMaxWaitS = 6;

struct DhtOptions {
  // UDP HOST:PORT. "": 127.0.0.1:0 when every bootstrap node is on this machine (or none is
  // named), else 0.0.0.0:0.
  std::string listen;
  // Nodes to join through, HOST:PORT (IP literals). None: this node waits to be joined.
  // libtorrent's public bootstrap nodes are never used.
  std::vector<std::string> bootstrap;
  // A client's node: it asks, but other nodes keep it out of their routing tables (BEP 43).
  // A node that comes and goes with each `run` would otherwise leave the tables full of
  // nodes that are gone, and every lookup and announcement waits for them to time out.
  bool read_only = false;
};

class DhtNode {
 public:
  static StatusOr<std::shared_ptr<DhtNode>> Start(const DhtOptions& o);
  ~DhtNode();
  // Where this node listens, HOST:PORT (UDP): what others name with --dht-bootstrap.
  std::string address() const;
  // Announces `port` (TCP) of this host under `key`, now (refreshing is the caller's).
  void Announce(const DhtKey& key, int port);
  // The endpoints announced under each of `keys` that the DHT gives. Replies stop coming when
  // the lookups are done; it returns once none has come for a moment after the first, or after
  // `max_wait_s` (kDhtQuietS, kDhtMaxWaitS).
  std::vector<std::vector<Endpoint>> GetPeers(std::span<const DhtKey> keys,
                                              double max_wait_s = kDhtMaxWaitS);
  struct Impl;

 private:
  DhtNode() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ggswarm::net
