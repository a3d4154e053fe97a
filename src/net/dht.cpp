#include "net/dht.h"

#include <libtorrent/alert_types.hpp>
#include <libtorrent/hasher.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/settings_pack.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <set>

namespace ggswarm::net {
namespace {

using Clock = std::chrono::steady_clock;

DhtKey Sha1(const std::string& s) {
  const lt::sha1_hash h = lt::hasher(s).final();
  DhtKey k;
  std::copy(h.begin(), h.end(), k.begin());
  return k;
}

lt::sha1_hash ToHash(const DhtKey& k) {
  return lt::sha1_hash(reinterpret_cast<const char*>(k.data()));
}

}  // namespace

DhtKey ModelKey(const std::string& model_id) { return Sha1("ggswarm stages " + model_id); }

DhtKey LayerKey(const std::string& model_id, int first_layer) {
  return Sha1("ggswarm stages " + model_id + " from layer " + std::to_string(first_layer));
}

struct DhtNode::Impl {
  std::unique_ptr<lt::session> ses;
  std::string host;
  int port = 0;
  std::mutex lookup_mu;  // one lookup at a time pops the session's alerts
  std::vector<Endpoint> bootstrap;
};

StatusOr<std::shared_ptr<DhtNode>> DhtNode::Start(const DhtOptions& o) {
  auto boot = ParseEndpoints(o.bootstrap);
  if (!boot.ok()) return boot.status().WithContext("--dht-bootstrap");
  std::string listen = o.listen;
  if (listen.empty()) {
    bool all_here = true;
    for (const Endpoint& e : *boot) all_here &= IsLoopback(e.host);
    listen = all_here ? "127.0.0.1:0" : "0.0.0.0:0";
  }
  auto where = ParseEndpoint(listen);
  if (!where.ok()) return where.status().WithContext("--dht-listen");
  lt::settings_pack sp;
  using lt::settings_pack;
  sp.set_int(settings_pack::alert_mask, static_cast<int>(static_cast<std::uint32_t>(
                                            lt::alert_category::error | lt::alert_category::status |
                                            lt::alert_category::dht_operation)));
  const bool v6 = where->host.find(':') != std::string::npos;
  sp.set_str(settings_pack::listen_interfaces,
             (v6 ? "[" + where->host + "]" : where->host) + ":" + std::to_string(where->port));
  sp.set_str(settings_pack::user_agent, "ggswarm/0.1");
  sp.set_bool(settings_pack::enable_lsd, false);
  sp.set_bool(settings_pack::enable_upnp, false);
  sp.set_bool(settings_pack::enable_natpmp, false);
  sp.set_bool(settings_pack::enable_outgoing_utp, false);
  sp.set_bool(settings_pack::enable_incoming_utp, false);
  ApplyDhtSettings(sp, *boot, where->host);
  sp.set_bool(settings_pack::dht_read_only, o.read_only);
  auto impl = std::make_unique<Impl>();
  impl->host = where->host;
  try {
    lt::session_params params(std::move(sp));
    params.extensions.clear();
    impl->ses = std::make_unique<lt::session>(std::move(params));
  } catch (const std::exception& e) {
    return Status::IOError(std::string("cannot start a DHT node: ") + e.what());
  }
  // The UDP socket's port: where the DHT listens.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (impl->port == 0 && Clock::now() < deadline) {
    impl->ses->wait_for_alert(std::chrono::milliseconds(200));
    std::vector<lt::alert*> alerts;
    impl->ses->pop_alerts(&alerts);
    for (lt::alert* a : alerts) {
      if (auto* f = lt::alert_cast<lt::listen_failed_alert>(a))
        return Status::IOError("a DHT node cannot listen on " + listen + ": " + f->error.message());
      if (auto* s = lt::alert_cast<lt::listen_succeeded_alert>(a);
          s && s->socket_type == lt::socket_type_t::utp)
        impl->port = s->port;
    }
  }
  if (impl->port == 0) return Status::IOError("a DHT node cannot listen on " + listen);
  // libtorrent keeps its bootstrap nodes out of its routing table (routers of the public DHT
  // store nothing). Here they are ordinary nodes (another stage, a peer): in the table they
  // take part in lookups and store announcements, and a node that joins before any other
  // has is not left with an empty table.
  impl->bootstrap = *boot;
  for (const Endpoint& e : impl->bootstrap) impl->ses->add_dht_node({e.host, e.port});
  auto node = std::shared_ptr<DhtNode>(new DhtNode());
  node->impl_ = std::move(impl);
  return node;
}

DhtNode::~DhtNode() = default;

std::string DhtNode::address() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return (v6 ? "[" + impl_->host + "]" : impl_->host) + ":" + std::to_string(impl_->port);
}

void DhtNode::Announce(const DhtKey& key, int port) { impl_->ses->dht_announce(ToHash(key), port); }

std::vector<std::vector<Endpoint>> DhtNode::GetPeers(std::span<const DhtKey> keys,
                                                     double max_wait_s) {
  std::lock_guard<std::mutex> l(impl_->lookup_mu);
  std::map<lt::sha1_hash, size_t> index;
  for (size_t i = 0; i < keys.size(); ++i) {
    index[ToHash(keys[i])] = i;
    impl_->ses->dht_get_peers(ToHash(keys[i]));
  }
  std::vector<std::set<std::pair<std::string, int>>> found(keys.size());
  const auto start = Clock::now();
  std::optional<Clock::time_point> last_reply;
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  while (seconds(Clock::now() - start) < max_wait_s &&
         !(last_reply && seconds(Clock::now() - *last_reply) > kDhtQuietS)) {
    impl_->ses->wait_for_alert(std::chrono::milliseconds(50));
    std::vector<lt::alert*> alerts;
    impl_->ses->pop_alerts(&alerts);
    for (lt::alert* a : alerts) {
      auto* r = lt::alert_cast<lt::dht_get_peers_reply_alert>(a);
      if (!r) continue;
      auto it = index.find(r->info_hash);
      if (it == index.end()) continue;  // a late reply of an earlier lookup
      last_reply = Clock::now();
      for (const lt::tcp::endpoint& e : r->peers())
        found[it->second].insert({e.address().to_string(), e.port()});
    }
  }
  std::vector<std::vector<Endpoint>> v(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    for (const auto& [host, port] : found[i]) v[i].push_back({host, port});
  return v;
}

}  // namespace ggswarm::net
