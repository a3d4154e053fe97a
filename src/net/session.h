// One libtorrent session configured the ggswarm way: it talks only to the peers it is
// given. DHT, local service discovery, UPnP/NAT-PMP and trackers stay off unless the user
// turns them on, and peer exchange is never loaded (it would hand us peers nobody named).
#pragma once

#include <libtorrent/session.hpp>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace ggswarm::net {

struct SwarmOptions {
  // HOST:PORT; port 0 picks a free one. "" listens nowhere (a fetch only connects out).
  std::string listen = "127.0.0.1:0";
  bool dht = false;                        // --dht
  std::vector<std::string> dht_bootstrap;  // --dht-bootstrap HOST:PORT; none: wait to be joined
  bool lsd = false;                        // --lsd (local service discovery, multicast)
  bool port_mapping = false;               // --port-mapping (UPnP and NAT-PMP)
  std::vector<std::string> trackers;       // --tracker URL
  int64_t upload_limit = 0;                // bytes/s per torrent, 0: none (applies on loopback too)
  int64_t download_limit = 0;              // bytes/s per torrent, 0: none
  // Disk I/O with pread/pwrite instead of libtorrent's memory maps: a seed sends about 15%
  // faster this way (no page faults on its reads); a fetch writes faster through the maps.
  bool read_with_pread = false;
};

struct Endpoint {
  std::string host;
  int port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// "127.0.0.1:6881", "[::1]:6881": a literal IP address and a port (no name lookups, so
// that nothing is sent to a DNS server).
StatusOr<Endpoint> ParseEndpoint(const std::string& s);
StatusOr<std::vector<Endpoint>> ParseEndpoints(const std::vector<std::string>& list);

// True for 127.0.0.0/8 and ::1.
bool IsLoopback(const std::string& ip);

// DHT settings of every node ggswarm runs: it joins through `bootstrap` only (never
// libtorrent's public bootstrap nodes). A node listening on a loopback or private address
// (a test's or a LAN's own DHT) accepts many nodes from one address, which the public DHT
// refuses as a defence against one host posing as many.
void ApplyDhtSettings(lt::settings_pack& sp, const std::vector<Endpoint>& bootstrap,
                      const std::string& listen_host);

// A session with the settings above and the plugins ggswarm wants (ut_metadata for
// fetching by info-hash, smart_ban for peers that send bad data). Fails when it cannot
// listen where asked.
StatusOr<std::unique_ptr<lt::session>> OpenSession(const SwarmOptions& o);

// The port the session listens on, once it does (0 until then, or when it cannot).
int ListenPort(lt::session& s);

// "10M", "500K", "1000": bytes per second (base/units.h), at most INT32_MAX.
StatusOr<int64_t> ParseRate(const std::string& s);

}  // namespace ggswarm::net
