#include "net/session.h"

#include <charconv>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/extensions.hpp>
#include <libtorrent/extensions/smart_ban.hpp>
#include <libtorrent/extensions/ut_metadata.hpp>
#include <libtorrent/peer_connection.hpp>
#include <libtorrent/peer_connection_handle.hpp>
#include <libtorrent/posix_disk_io.hpp>
#include <libtorrent/session_params.hpp>
#include <libtorrent/settings_pack.hpp>

#include "base/units.h"

namespace ggswarm::net {

StatusOr<Endpoint> ParseEndpoint(const std::string& s) {
  auto bad = [&] {
    return Status::InvalidArgument("'" + s +
                                   "': expected an IP address and a port, like 127.0.0.1:6881 "
                                   "or [::1]:6881");
  };
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad();
  std::string host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  }
  lt::error_code ec;
  lt::make_address(host, ec);
  if (ec) return bad();
  int port = -1;
  const char* p = s.data() + colon + 1;
  auto [end, err] = std::from_chars(p, s.data() + s.size(), port);
  if (err != std::errc() || end != s.data() + s.size() || port < 0 || port > 65535) return bad();
  return Endpoint{host, port};
}

StatusOr<std::vector<Endpoint>> ParseEndpoints(const std::vector<std::string>& list) {
  std::vector<Endpoint> v;
  for (const std::string& s : list) {
    auto e = ParseEndpoint(s);
    if (!e.ok()) return e.status();
    if (e->port == 0) return Status::InvalidArgument("'" + s + "': port 0 is not a peer's port");
    v.push_back(*e);
  }
  return v;
}

StatusOr<int64_t> ParseRate(const std::string& s) {
  // libtorrent keeps rates in an int.
  const auto v = ParseByteSize(s);
  if (!v || *v > static_cast<uint64_t>(INT32_MAX))
    return Status::InvalidArgument("'" + s + "': expected bytes per second, like 500K or 10M");
  return static_cast<int64_t>(*v);
}

bool IsLoopback(const std::string& ip) {
  lt::error_code ec;
  const lt::address a = lt::make_address(ip, ec);
  return !ec && a.is_loopback();
}

void ApplyDhtSettings(lt::settings_pack& sp, const std::vector<Endpoint>& bootstrap,
                      const std::string& listen_host) {
  using lt::settings_pack;
  std::string nodes;
  for (const Endpoint& e : bootstrap) {
    const bool v6 = e.host.find(':') != std::string::npos;
    nodes += (nodes.empty() ? "" : ",") + (v6 ? "[" + e.host + "]" : e.host) + ":" +
             std::to_string(e.port);
  }
  sp.set_str(settings_pack::dht_bootstrap_nodes, nodes);
  lt::error_code ec;
  const lt::address a = lt::make_address(listen_host, ec);
  bool own_network = !ec && a.is_loopback();
  if (!ec && a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    own_network |=
        b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168);
  } else if (!ec && a.is_v6()) {
    own_network |= (a.to_v6().to_bytes()[0] & 0xfe) == 0xfc;
  }
  if (own_network) {
    // Every node of a test's DHT sends from 127.0.0.1: the per-address limit of 5 queries a
    // second would block them all, for 5 minutes, once a few of them are busy.
    sp.set_int(settings_pack::dht_block_ratelimit, 10000);
    // Torrents announce (and look for peers) every 10 s rather than 15 minutes: an
    // announcement made before the DHT had formed is not left standing that long.
    sp.set_int(settings_pack::dht_announce_interval, 10);
    sp.set_bool(settings_pack::dht_restrict_routing_ips, false);
    sp.set_bool(settings_pack::dht_restrict_search_ips, false);
    sp.set_bool(settings_pack::dht_ignore_dark_internet, false);
  }
}

namespace {

// TCP_NODELAY on every peer connection. libtorrent leaves Nagle's algorithm on: a piece
// message split across two writes then waits for the receiver's delayed ACK (40 ms), and
// while few requests are in flight (the first second of a transfer, before libtorrent has
// measured the rate) each round trip takes 44 ms instead of 0.1 ms on loopback.
struct NoDelayPeer final : lt::peer_plugin {
  explicit NoDelayPeer(lt::peer_connection_handle pc) : pc_(std::move(pc)) {}
  void Apply() {
    if (auto p = pc_.native_handle()) {
      lt::error_code ec;
      p->get_socket().set_option(lt::tcp::no_delay(true), ec);
    }
  }
  void on_connected() override { Apply(); }
  bool on_handshake(lt::span<char const>) override {
    Apply();  // incoming connections: connected before the plugin existed
    return true;
  }
  lt::peer_connection_handle pc_;
};

struct NoDelay final : lt::torrent_plugin {
  std::shared_ptr<lt::peer_plugin> new_connection(lt::peer_connection_handle const& pc) override {
    return std::make_shared<NoDelayPeer>(pc);
  }
};

}  // namespace

StatusOr<std::unique_ptr<lt::session>> OpenSession(const SwarmOptions& o) {
  auto boot = ParseEndpoints(o.dht_bootstrap);
  if (!boot.ok()) return boot.status().WithContext("--dht-bootstrap");
  // A DHT node needs a UDP socket: a fetch that would only connect out listens too, on this
  // machine when every node it joins through is here.
  std::string listen_at = o.listen;
  if (listen_at.empty() && o.dht) {
    bool all_here = true;
    for (const Endpoint& e : *boot) all_here &= IsLoopback(e.host);
    listen_at = all_here ? "127.0.0.1:0" : "0.0.0.0:0";
  }
  auto listen = ParseEndpoint(listen_at.empty() ? "127.0.0.1:0" : listen_at);
  if (!listen.ok()) return Status::InvalidArgument("--listen " + listen.status().message());

  lt::settings_pack sp;
  using lt::settings_pack;
  sp.set_int(settings_pack::alert_mask,
             static_cast<int>(static_cast<std::uint32_t>(
                 lt::alert_category::error | lt::alert_category::peer |
                 lt::alert_category::connect | lt::alert_category::storage |
                 lt::alert_category::status | lt::alert_category::file_progress)));
  if (std::getenv("GGSWARM_TRACE"))
    sp.set_int(settings_pack::alert_mask,
               static_cast<int>(static_cast<std::uint32_t>(lt::alert_category::all &
                                                           ~lt::alert_category::block_progress &
                                                           ~lt::alert_category::piece_progress)));
  const bool v6 = listen->host.find(':') != std::string::npos;
  sp.set_str(settings_pack::listen_interfaces,
             listen_at.empty() ? std::string()
                               : (v6 ? "[" + listen->host + "]" : listen->host) + ":" +
                                     std::to_string(listen->port));
  sp.set_str(settings_pack::user_agent, "ggswarm/0.1");
  // Reaching beyond the named peers is opt-in.
  sp.set_bool(settings_pack::enable_dht, o.dht);
  ApplyDhtSettings(sp, *boot, listen->host);
  sp.set_bool(settings_pack::enable_lsd, o.lsd);
  sp.set_bool(settings_pack::enable_upnp, o.port_mapping);
  sp.set_bool(settings_pack::enable_natpmp, o.port_mapping);
  // TCP only: on loopback and LANs it is faster than uTP, and one transport is one less
  // thing listening.
  sp.set_bool(settings_pack::enable_outgoing_utp, false);
  sp.set_bool(settings_pack::enable_incoming_utp, false);
  // Peers on one host (tests, several stores on one machine) share an address.
  sp.set_bool(settings_pack::allow_multiple_connections_per_ip, true);
  // Every peer that asks gets served: a swarm of model peers is small and cooperative.
  sp.set_int(settings_pack::choking_algorithm, settings_pack::fixed_slots_choker);
  sp.set_int(settings_pack::unchoke_slots_limit, -1);
  // Throughput on fast links: deep request queues and send buffers, enough disk threads
  // to hash (SHA-256 per 16 KiB block) on both cores.
  sp.set_int(settings_pack::send_buffer_watermark, 8 << 20);
  sp.set_int(settings_pack::send_buffer_low_watermark, 1 << 20);
  sp.set_int(settings_pack::max_queued_disk_bytes, 32 << 20);
  sp.set_int(settings_pack::max_out_request_queue, 1500);
  sp.set_int(settings_pack::max_allowed_in_request_queue, 4000);
  sp.set_int(settings_pack::aio_threads, 4);
  sp.set_int(settings_pack::hashing_threads, 2);
  // Whole pieces from one peer where it is quick enough: a piece that fails its hash check
  // then has one sender to blame, and a good peer never shares a bad peer's ban.
  sp.set_int(settings_pack::whole_pieces_threshold, 60);
  sp.set_bool(settings_pack::piece_extent_affinity, true);
  // A fetch by info-hash wants nothing for a moment after the metadata arrives (until it has
  // chosen its files); its connections must survive that moment.
  sp.set_bool(settings_pack::close_redundant_connections, false);
  // New connections are made on the session's tick: 100 ms instead of 500 starts a fetch
  // 0.4 s sooner.
  sp.set_int(settings_pack::tick_interval, 100);
  // A fetch reconnects to the peers it was given itself; a failed one is tried again soon.
  sp.set_int(settings_pack::min_reconnect_time, 1);

  lt::session_params params(std::move(sp));
  if (o.read_with_pread) params.disk_io_constructor = lt::posix_disk_io_constructor;
  params.extensions.clear();  // the defaults include ut_pex
  std::unique_ptr<lt::session> s;
  try {
    s = std::make_unique<lt::session>(std::move(params));
  } catch (const std::exception& e) {
    return Status::IOError(std::string("cannot start the BitTorrent session: ") + e.what());
  }
  // Bootstrap nodes also as ordinary nodes (see DhtNode::Start): in a small DHT they are
  // most of it.
  if (o.dht)
    for (const Endpoint& e : *boot) s->add_dht_node({e.host, e.port});
  s->add_extension(&lt::create_ut_metadata_plugin);
  s->add_extension(&lt::create_smart_ban_plugin);
  s->add_extension([](lt::torrent_handle const&, lt::client_data_t) {
    return std::shared_ptr<lt::torrent_plugin>(std::make_shared<NoDelay>());
  });

  if (listen_at.empty()) return s;
  // Wait for the listen socket: a peer must say where it listens, and a port in use is an
  // error the user should see now.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    s->wait_for_alert(std::chrono::milliseconds(200));
    std::vector<lt::alert*> alerts;
    s->pop_alerts(&alerts);
    for (lt::alert* a : alerts) {
      if (auto* f = lt::alert_cast<lt::listen_failed_alert>(a)) {
        return Status::IOError("cannot listen on " + listen_at + ": " + f->error.message());
      }
      if (lt::alert_cast<lt::listen_succeeded_alert>(a)) return s;
    }
  }
  return Status::IOError("cannot listen on " + listen_at + ": no answer from the session");
}

int ListenPort(lt::session& s) { return s.is_listening() ? s.listen_port() : 0; }

}  // namespace ggswarm::net
