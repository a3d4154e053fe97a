// `ggswarm peer`: a long-lived peer that seeds every model in its store (and any fragment
// directories named with --seed), picks up models added to the store while it runs, and
// connects out to the peers named with --connect. A directory's absent fragments (a
// partial copy) are simply not offered; its present ones are checked against the torrent
// before they are shared.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "net/fetch.h"
#include "net/session.h"
#include "net/store.h"

namespace ggswarm::net {

struct PeerOptions {
  std::string store;                   // "" for none
  std::vector<std::string> seed_dirs;  // fragment directories with a model.torrent
  std::vector<Endpoint> connect;
  SwarmOptions swarm;
};

class Peer {
 public:
  static StatusOr<std::unique_ptr<Peer>> Start(const PeerOptions& o, LogFn log);
  int port() const;
  size_t models() const { return dirs_.size(); }
  // Handles the session's events (waiting up to `wait` for one), adds new models from the
  // store and reconnects to --connect peers. A peer runs this in a loop.
  Status Poll(std::chrono::milliseconds wait);

 private:
  Peer(const PeerOptions& o, LogFn log) : o_(o), log_(std::move(log)) {}
  void Log(const std::string& s) {
    if (log_) log_(s);
  }
  Status PollOnce(std::chrono::milliseconds wait);
  Status AddDir(const std::string& dir);
  void Rescan();
  void ConnectOut();

  PeerOptions o_;
  LogFn log_;
  std::unique_ptr<lt::session> ses_;
  std::unique_ptr<Store> store_;
  std::set<std::string> dirs_;                      // added (or refused) directories
  std::map<std::string, std::string> dir_of_hash_;  // info-hash → directory
  std::chrono::steady_clock::time_point last_scan_, last_connect_;
};

}  // namespace ggswarm::net
