// `ggswarm torrent / peer / fetch / store`: the fragment swarm on BitTorrent v2.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "base/file.h"
#include "commands.h"
#include "net/fetch.h"
#include "net/peer.h"
#include "net/stage.h"
#include "net/stage_client.h"
#include "net/store.h"
#include "net/torrent.h"
#include "numeric_flags.h"
#include "progress_bar.h"

namespace ggswarm::cli {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

void Say(const std::string& s) {
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
}

void PrintTorrent(const std::string& path, const net::TorrentSummary& t) {
  std::printf("torrent %s: %s, %d files, %.2f MB, pieces of %d KiB\n", path.c_str(),
              !t.info_hash_v1.empty()    ? "hybrid v1+v2"
              : t.info_hash.size() == 40 ? "v1"
                                         : "v2",
              t.files, t.total_size / 1e6, t.piece_size / 1024);
  std::printf("info-hash %s\n", t.info_hash.c_str());
  if (!t.info_hash_v1.empty()) std::printf("info-hash v1 %s\n", t.info_hash_v1.c_str());
  std::printf("magnet %s\n", t.magnet.c_str());
}

struct SwarmFlags {
  std::string listen, upload_limit, download_limit;
  bool dht = false, lsd = false, port_mapping = false;
  std::vector<std::string> trackers, dht_bootstrap;

  void Add(CLI::App* c, bool download) {
    c->add_option("--listen", listen,
                  download ? "Also accept connections on HOST:PORT (default: connect out only)"
                           : "Listen on HOST:PORT (default 127.0.0.1:0, any free port)");
    c->add_option("--upload-limit", upload_limit, "Upload at most this many bytes/s, e.g. 20M");
    if (download)
      c->add_option("--download-limit", download_limit, "Download at most this many bytes/s");
    c->add_flag("--dht", dht, "Use the BitTorrent DHT (off by default), on the --listen port");
    c->add_option("--dht-bootstrap", dht_bootstrap,
                  "With --dht: a DHT node to join through, HOST:PORT (repeatable; none: wait "
                  "to be joined; public nodes are never used unless named)");
    c->add_flag("--lsd", lsd, "Use local service discovery (multicast on the LAN; off by default)");
    c->add_flag("--port-mapping", port_mapping, "Ask the router for a port (UPnP, NAT-PMP)");
    c->add_option("--tracker", trackers, "Announce to this tracker URL (none by default)");
  }
  StatusOr<net::SwarmOptions> Get() const {
    net::SwarmOptions o;
    if (!listen.empty()) o.listen = listen;
    o.dht = dht;
    o.dht_bootstrap = dht_bootstrap;
    if (!dht_bootstrap.empty() && !dht)
      return Status::InvalidArgument("--dht-bootstrap needs --dht");
    o.lsd = lsd;
    o.port_mapping = port_mapping;
    o.trackers = trackers;
    if (!upload_limit.empty()) {
      auto r = net::ParseRate(upload_limit);
      if (!r.ok()) return r.status().WithContext("--upload-limit");
      o.upload_limit = *r;
    }
    if (!download_limit.empty()) {
      auto r = net::ParseRate(download_limit);
      if (!r.ok()) return r.status().WithContext("--download-limit");
      o.download_limit = *r;
    }
    return o;
  }
};

int RunTorrent(const std::string& dir, const net::TorrentOptions& o) {
  ProgressBar bar("torrent");
  auto t = net::MakeTorrent(dir, o, bar.fn());
  bar.Finish();
  if (!t.ok()) return Fail(t.status().ToString());
  PrintTorrent(dir + "/" + net::kTorrentFile, *t);
  return 0;
}

int RunPeer(const net::PeerOptions& po) {
  auto peer = net::Peer::Start(po, Say);
  if (!peer.ok()) return Fail(peer.status().ToString());
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  const std::string at =
      po.swarm.listen.substr(0, po.swarm.listen.rfind(':')) + ":" + std::to_string((*peer)->port());
  Say("listening on " + at);
  if (po.swarm.dht) Say("DHT node on " + at + " (UDP): others join with --dht-bootstrap " + at);
  while (!g_stop) {
    Status s = (*peer)->Poll(std::chrono::milliseconds(250));
    if (!s.ok()) return Fail(s.ToString());
  }
  Say("stopping");
  return 0;
}

int RunFetch(const net::FetchOptions& fo) {
  ProgressBar bar("fetch");
  auto log = [&](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  auto r = net::Fetch(fo, bar.fn(), log);
  bar.Finish();
  if (!r.ok()) return Fail(r.status().ToString());
  std::printf("fetched %s (%s) into %s: %zu files, %.2f MB selected, %.2f MB already there\n",
              r->name.c_str(), r->info_hash.c_str(), fo.out_dir.c_str(), r->files,
              r->selected_bytes / 1e6, r->had_bytes / 1e6);
  std::printf("downloaded %llu bytes in %.2f s (%.1f MB/s); %d piece(s) failed the hash check\n",
              static_cast<unsigned long long>(r->downloaded_bytes), r->seconds,
              r->downloaded_bytes / 1e6 / std::max(r->seconds, 1e-9), r->hash_failures);
  std::printf("times: to manifest and header %.2f s, then fragments %.2f s, final check %.2f s\n",
              r->head_seconds, r->body_seconds, r->check_seconds);
  for (const auto& [addr, bytes] : r->from_peer)
    std::printf("from %s: %llu bytes\n", addr.c_str(), static_cast<unsigned long long>(bytes));
  if (r->wrote_torrent) std::printf("wrote %s/%s\n", fo.out_dir.c_str(), net::kTorrentFile);
  return 0;
}

int RunServe(net::StageOptions so, const std::vector<std::string>& fetch_from,
             const std::string& cache, const std::string& layers) {
  if (!fetch_from.empty() || (!PathExists(so.model_path) && !so.model_path.empty())) {
    if (fetch_from.empty())
      return Fail(so.model_path +
                  ": no such file or directory (to fetch a model by info-hash, "
                  "give --fetch-from HOST:PORT)");
    auto peers = net::ParseEndpoints(fetch_from);
    if (!peers.ok()) return Fail(peers.status().WithContext("--fetch-from").ToString());
    net::FetchOptions fo;
    fo.ref = so.model_path;
    fo.peers = *peers;
    fo.out_dir = cache;
    fo.swarm.listen.clear();
    if (!layers.empty()) {
      auto sel = fragments::Selection::Parse(layers, false, false);
      if (!sel.ok()) return Fail(sel.status().ToString());
      fo.selection = *sel;
    }
    ProgressBar bar("fetch");
    auto dir = net::FetchStage(
        fo, bar.fn(), [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); });
    bar.Finish();
    if (!dir.ok()) return Fail(dir.status().ToString());
    so.model_path = *dir;
  }
  auto server = net::StageServer::Start(so, Say);
  if (!server.ok()) return Fail(server.status().ToString());
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  Say("serving " + (*server)->Describe());
  if (!(*server)->dht_address().empty())
    Say("DHT node on " + (*server)->dht_address() + ": clients find the model as dht://" +
        (*server)->model_id() + " --dht-bootstrap " + (*server)->dht_address());
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*server)->Shutdown();
  Say("stopping");
  return 0;
}

int RunStages(const std::string& uri, net::ChainOptions o) {
  if (!net::ParseSwarmUri(uri, &o))
    return Fail("'" + uri + "': expected swarm://HOST:PORT[/MODEL] or dht://MODEL_ID");
  auto stages = net::ListStages(o);
  if (!stages.ok()) return Fail(stages.status().ToString());
  if (stages->empty())
    return Fail(o.address + " knows of no stage" + (o.model.empty() ? "" : " of " + o.model));
  std::printf("%-18s %-20s %-9s %-22s %-9s %-5s %-12s %s\n", "model", "name", "layers", "address",
              "free/max", "busy", "kernels", "answers");
  for (const auto& s : *stages) {
    const std::string layers =
        std::to_string(s.first_layer) + "-" + std::to_string(s.end_layer - 1);
    char answers[32], sessions[32], busy[16];
    std::snprintf(answers, sizeof answers, "%.1f ms", s.rtt_ms);
    std::snprintf(sessions, sizeof sessions, "%d/%d", s.sessions_free, s.max_sessions);
    std::snprintf(busy, sizeof busy, "%.0f%%", 100 * s.busy);
    std::printf("%-18s %-20s %-9s %-22s %-9s %-5s %-12s %s%s%s\n", s.model_id.substr(0, 16).c_str(),
                s.model_name.c_str(), layers.c_str(), s.address.c_str(), s.answers ? sessions : "-",
                s.answers ? busy : "-", s.answers && !s.kernels.empty() ? s.kernels.c_str() : "-",
                s.answers ? answers : "no", s.has_embedding ? " +embedding" : "",
                s.has_head ? " +head" : "");
  }
  return 0;
}

}  // namespace

namespace {

// What the swarm commands parse into.
struct SwarmArgs {
  std::string stages_uri;
  net::ChainOptions stages_o;
  net::StageOptions so;
  std::string serve_layers;
  std::vector<std::string> fetch_from;
  std::string cache;
  uint64_t max_kv_mb = 0;
  net::TorrentOptions to;
  std::string dir;
  std::string piece_size;
  net::PeerOptions po;
  SwarmFlags peer_flags;
  std::vector<std::string> connect;
  net::FetchOptions fo;
  SwarmFlags fetch_flags;
  std::vector<std::string> peers;
  std::string layers;
  bool with_embedding = false, with_head = false;
  std::string store_dir, src;
};

}  // namespace

void AddSwarmCommands(CLI::App& app, int& rc) {
  // Owned by the callbacks below (and so by `app`), which outlive this function.
  auto a = std::make_shared<SwarmArgs>();
  auto* stages = app.add_subcommand("stages", "List the stages a swarm peer knows of");
  stages->add_option("swarm", a->stages_uri, "swarm://HOST:PORT[/MODEL] or dht://MODEL_ID")
      ->required();
  stages->add_option("--token", a->stages_o.token, "The stages' --token");
  stages->add_option("--dht-bootstrap", a->stages_o.dht_bootstrap,
                     "dht://: a DHT node to join through, HOST:PORT (repeatable)");
  stages->add_option("--tls-ca", a->stages_o.tls_ca,
                     "The stages' CA certificate (PEM), when they use TLS");
  stages->callback([a, &rc] { rc = RunStages(a->stages_uri, a->stages_o); });

  auto* serve = app.add_subcommand(
      "serve", "Serve a range of a model's layers to swarm:// clients (pipelined inference)");
  serve
      ->add_option("model", a->so.model_path,
                   "GGUF file, fragment directory, or (with --fetch-from) a magnet link, "
                   "info-hash or .torrent")
      ->required();
  serve->add_option("--fetch-from", a->fetch_from,
                    "Fetch this stage's fragments from this BitTorrent peer (repeatable)");
  serve->add_option("--cache", a->cache,
                    "Where fetched fragments go (default ~/.cache/ggswarm/HASH-layers-A-B)");
  serve->add_option("--layers", a->serve_layers, "Layers A-B to serve (default: all)");
  serve->add_option("--listen", a->so.listen, "Listen on HOST:PORT (default 127.0.0.1:0)");
  serve->add_option("--advertise", a->so.advertise, "Address to tell others (default: --listen's)");
  serve->add_option("--peer", a->so.peers, "Another stage to announce to, HOST:PORT (repeatable)");
  serve->add_option("--token", a->so.token, "Refuse calls that do not carry this secret");
  serve->add_option(
      "--tls-cert", a->so.tls_cert,
      "TLS: this stage's certificate chain (PEM); with --tls-key, only TLS is spoken");
  serve->add_option("--tls-key", a->so.tls_key, "TLS: this stage's private key (PEM)");
  serve->add_option("--tls-ca", a->so.tls_ca,
                    "TLS: the CA certificate (PEM) of the stages this one pushes and announces to");
  serve->add_flag("--dht", a->so.dht,
                  "Announce this stage on the BitTorrent DHT and find its next stages there");
  serve->add_option("--dht-listen", a->so.dht_listen,
                    "The DHT node's UDP HOST:PORT (default 127.0.0.1:0, or 0.0.0.0:0 when a "
                    "--dht-bootstrap node is elsewhere)");
  serve->add_option("--dht-bootstrap", a->so.dht_bootstrap,
                    "A DHT node to join through, HOST:PORT (repeatable; none: wait to be joined)");
  serve->add_option("-t,--threads", a->so.threads, "Compute threads (default: all cores)")
      ->check(Within(runtime::kThreads));
  serve->add_option("--max-sessions", a->so.max_sessions, "Sessions at once (default 8)")
      ->check(Within({"max_sessions", 1, 4096}));
  serve->add_option("--ctx", a->so.max_ctx, "Positions per session (default: model's, ≤ 4096)")
      ->check(Within(runtime::kContext));
  serve->add_option("--max-kv-mb", a->max_kv_mb,
                    "KV memory of all sessions together, MiB (default: no limit)");
  serve
      ->add_option("--idle-timeout", a->so.idle_timeout_s,
                   "Close a session unused this many seconds (default 300)")
      ->check(Within({"idle_timeout", 0, 1e7, true}));
  serve
      ->add_option("--unused-timeout", a->so.unused_timeout_s,
                   "Close a session never used this many seconds after it opened (default 15)")
      ->check(Within({"unused_timeout", 0, 1e7, true}));
  serve->callback([a, &rc] {
    if (!a->serve_layers.empty()) {
      auto sel = fragments::Selection::Parse(a->serve_layers, false, false);
      if (!sel.ok()) return void(rc = Fail(sel.status().ToString()));
      a->so.first_layer = sel->first_layer;
      a->so.end_layer = sel->last_layer + 1;
    }
    if (a->max_kv_mb > (1ull << 40)) return void(rc = Fail("--max-kv-mb is too large"));
    a->so.max_kv_bytes = a->max_kv_mb << 20;
    rc = RunServe(a->so, a->fetch_from, a->cache, a->serve_layers);
  });

  auto* tor = app.add_subcommand("torrent",
                                 "Write model.torrent (BitTorrent v2) for a fragment "
                                 "directory");
  tor->add_option("dir", a->dir, "Fragment directory")->required();
  tor->add_flag("--hybrid", a->to.hybrid,
                "Also v1 metadata, for v1 clients that take hybrid torrents (libtorrent 1.2)");
  tor->add_flag("--v1", a->to.v1,
                "A v1 torrent only: for Transmission 3, aria2, rtorrent (they refuse hybrids)");
  tor->add_option("--piece-size", a->to.piece_size, "Piece size in bytes (power of two ≥ 16384)");
  tor->add_option("--tracker", a->to.trackers, "Tracker URL to put in the torrent");
  tor->add_flag("--force", a->to.overwrite, "Replace an existing model.torrent");
  tor->callback([a, &rc] { rc = RunTorrent(a->dir, a->to); });

  auto* peer = app.add_subcommand("peer", "Seed every model in a store (and --seed directories)");
  peer->add_option("--store", a->po.store, "Store directory (created if absent)");
  peer->add_option("--seed", a->po.seed_dirs, "Also seed this fragment directory (repeatable)");
  peer->add_option("--connect", a->connect, "Connect to this peer, HOST:PORT (repeatable)");
  a->peer_flags.Add(peer, /*download=*/false);
  peer->callback([a, &rc] {
    if (a->po.store.empty() && a->po.seed_dirs.empty())
      return void(rc = Fail("give a --store or a --seed directory"));
    auto sw = a->peer_flags.Get();
    if (!sw.ok()) return void(rc = Fail(sw.status().ToString()));
    a->po.swarm = *sw;
    auto eps = net::ParseEndpoints(a->connect);
    if (!eps.ok()) return void(rc = Fail(eps.status().WithContext("--connect").ToString()));
    a->po.connect = *eps;
    rc = RunPeer(a->po);
  });

  auto* fetch = app.add_subcommand("fetch", "Fetch a model, or some of its layers, from peers");
  fetch->add_option("model", a->fo.ref, "Magnet link, info-hash or .torrent file")->required();
  fetch
      ->add_option("out_dir", a->fo.out_dir, "Directory to fetch into (new, empty, or interrupted)")
      ->required();
  fetch->add_option("--peer", a->peers, "A peer that has the model, HOST:PORT (repeatable)");
  fetch->add_option("--layers", a->layers, "Only these layers, e.g. 0-7 (default: everything)");
  fetch->add_flag("--with-embedding", a->with_embedding, "With --layers: also the token embedding");
  fetch->add_flag("--with-head", a->with_head, "With --layers: also the output head and its norm");
  fetch
      ->add_option("--timeout", a->fo.timeout_s,
                   "Give up when nothing arrives for this many seconds (default 60)")
      ->check(Within({"timeout", 0, 1e7, true}));
  a->fetch_flags.Add(fetch, /*download=*/true);
  fetch->callback([a, &rc] {
    auto sel = fragments::Selection::Parse(a->layers, a->with_embedding, a->with_head);
    if (!sel.ok()) return void(rc = Fail(sel.status().ToString()));
    a->fo.selection = *sel;
    auto sw = a->fetch_flags.Get();
    if (!sw.ok()) return void(rc = Fail(sw.status().ToString()));
    a->fo.swarm = *sw;
    auto eps = net::ParseEndpoints(a->peers);
    if (!eps.ok()) return void(rc = Fail(eps.status().WithContext("--peer").ToString()));
    a->fo.peers = *eps;
    // A fetch connects out a->to the a->peers it was given; it listens only when told a->to.
    if (a->fetch_flags.listen.empty()) a->fo.swarm.listen.clear();
    rc = RunFetch(a->fo);
  });

  auto* store = app.add_subcommand("store", "Manage a peer's store of models");
  store->require_subcommand(1);
  auto* add = store->add_subcommand("add", "Copy a fragment directory into a store");
  add->add_option("store", a->store_dir, "Store directory (created if absent)")->required();
  add->add_option("dir", a->src, "Fragment directory")->required();
  add->callback([a, &rc] {
    auto s = net::Store::Open(a->store_dir, /*create=*/true);
    if (!s.ok()) return void(rc = Fail(s.status().ToString()));
    ProgressBar bar("store");
    auto r = s->Add(a->src, bar.fn());
    bar.Finish();
    if (!r.ok()) return void(rc = Fail(r.status().ToString()));
    std::printf(
        "added %s as %s: %zu fragments, %zu new (%.2f MB), %.2f MB shared with other "
        "models\n",
        a->src.c_str(), r->model_dir.c_str(), r->fragments, r->new_blobs, r->new_bytes / 1e6,
        r->shared_bytes / 1e6);
    std::printf("info-hash %s\nmagnet %s\n", r->torrent.info_hash.c_str(),
                r->torrent.magnet.c_str());
  });
  auto* list = store->add_subcommand("list", "List a store's models");
  list->add_option("store", a->store_dir, "Store directory")->required();
  list->callback([a, &rc] {
    auto s = net::Store::Open(a->store_dir, /*create=*/false);
    if (!s.ok()) return void(rc = Fail(s.status().ToString()));
    for (const std::string& d : s->ModelDirs()) {
      auto t = net::LoadTorrent(d + "/" + net::kTorrentFile);
      if (!t.ok()) {
        std::printf("%s: %s\n", d.c_str(), t.status().message().c_str());
        continue;
      }
      const auto sum = net::Summarize(*t->ti);
      std::printf("%s  %s  %d files  %.2f MB  %s\n", sum.info_hash.c_str(), sum.name.c_str(),
                  sum.files, sum.total_size / 1e6, d.c_str());
    }
  });
}

}  // namespace ggswarm::cli
