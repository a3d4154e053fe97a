#include "net/peer.h"

#include <filesystem>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_status.hpp>

#include "base/file.h"

namespace ggswarm::net {
namespace {

namespace fs = std::filesystem;
constexpr auto kRescanEvery = std::chrono::seconds(2);
constexpr auto kConnectEvery = std::chrono::seconds(5);

std::string IhOf(const lt::torrent_handle& h) {
  const lt::info_hash_t ih = h.info_hashes();
  return ih.has_v2() ? HexOf(ih.v2.data(), ih.v2.size()) : HexOf(ih.v1.data(), ih.v1.size());
}

}  // namespace

StatusOr<std::unique_ptr<Peer>> Peer::Start(const PeerOptions& o, LogFn log) {
  std::unique_ptr<Peer> p(new Peer(o, std::move(log)));
  if (!o.store.empty()) {
    auto s = Store::Open(o.store, /*create=*/true);
    if (!s.ok()) return s.status();
    p->store_ = std::make_unique<Store>(std::move(*s));
  }
  for (const std::string& d : o.seed_dirs) {
    if (!PathExists(d + "/" + kTorrentFile))
      return Status::NotFound(d + " has no " + kTorrentFile + " (make one with: ggswarm torrent " +
                              d + ")");
  }
  SwarmOptions swarm = o.swarm;
  swarm.read_with_pread = true;  // a peer mostly sends
  auto ses = OpenSession(swarm);
  if (!ses.ok()) return ses.status();
  p->ses_ = std::move(*ses);
  for (const std::string& d : o.seed_dirs) GGSWARM_RETURN_IF_ERROR(p->AddDir(d));
  p->Rescan();
  p->last_connect_ = std::chrono::steady_clock::now();
  return p;
}

int Peer::port() const { return ListenPort(*ses_); }

Status Peer::AddDir(const std::string& dir) {
  if (!dirs_.insert(dir).second) return Status::Ok();
  auto t = LoadTorrent(dir + "/" + kTorrentFile);
  if (!t.ok()) return t.status();
  lt::add_torrent_params p = std::move(*t);
  GGSWARM_RETURN_IF_ERROR(FlatFileNames(p.ti->files(), &p.renamed_files));
  const lt::file_storage& files = p.ti->files();
  p.file_priorities.assign(static_cast<size_t>(files.num_files()), lt::dont_download);
  for (lt::file_index_t i : files.file_range()) {
    if (!files.pad_file_at(i) && PathExists(dir + "/" + std::string(files.file_name(i))))
      p.file_priorities[static_cast<size_t>(i)] = lt::default_priority;
  }
  std::error_code ec;
  p.save_path = fs::absolute(dir, ec).string();
  p.flags &=
      ~(lt::torrent_flags::auto_managed | lt::torrent_flags::paused | lt::torrent_flags::seed_mode);
  p.trackers = o_.swarm.trackers;
  if (o_.swarm.upload_limit > 0) p.upload_limit = static_cast<int>(o_.swarm.upload_limit);
  const std::string ih = Summarize(*p.ti).info_hash;
  if (auto it = dir_of_hash_.find(ih); it != dir_of_hash_.end()) {
    Log("not seeding " + dir + ": the same model is seeded from " + it->second);
    return Status::Ok();
  }
  lt::error_code lec;
  lt::torrent_handle h = ses_->add_torrent(std::move(p), lec);
  if (lec) return Status::InvalidArgument("cannot seed " + dir + ": " + lec.message());
  dir_of_hash_[ih] = dir;
  for (const Endpoint& e : o_.connect)
    h.connect_peer({lt::make_address(e.host), static_cast<uint16_t>(e.port)});
  return Status::Ok();
}

void Peer::Rescan() {
  last_scan_ = std::chrono::steady_clock::now();
  if (!store_) return;
  for (const std::string& d : store_->ModelDirs()) {
    if (dirs_.count(d)) continue;
    if (Status s = AddDir(d); !s.ok()) Log("not seeding " + d + ": " + s.message());
  }
}

void Peer::ConnectOut() {
  last_connect_ = std::chrono::steady_clock::now();
  if (o_.connect.empty()) return;
  for (const lt::torrent_handle& h : ses_->get_torrents()) {
    std::vector<lt::peer_info> peers;
    h.get_peer_info(peers);
    for (const Endpoint& e : o_.connect) {
      lt::tcp::endpoint ep(lt::make_address(e.host), static_cast<uint16_t>(e.port));
      bool connected = false;
      for (const auto& pi : peers) connected |= pi.ip == ep;
      if (!connected) h.connect_peer(ep);
    }
  }
}

Status Peer::Poll(std::chrono::milliseconds wait) {
  try {
    return PollOnce(wait);
  } catch (const std::exception& e) {  // libtorrent reports some misuse by throwing
    return Status::IOError(std::string("peer: ") + e.what());
  }
}

Status Peer::PollOnce(std::chrono::milliseconds wait) {
  ses_->wait_for_alert(wait);
  std::vector<lt::alert*> alerts;
  ses_->pop_alerts(&alerts);
  for (lt::alert* a : alerts) {
    if (auto* tc = lt::alert_cast<lt::torrent_checked_alert>(a)) {
      const lt::torrent_status st = tc->handle.status();
      const std::string ih = IhOf(tc->handle);
      const std::string dir = dir_of_hash_.count(ih) ? dir_of_hash_[ih] : "?";
      Log("seeding " + st.name + " info-hash " + ih + " from " + dir + ": " +
          std::to_string(st.total_wanted_done / 1000000) + " MB" +
          (st.total_wanted_done < st.total_wanted
               ? " (" + std::to_string((st.total_wanted - st.total_wanted_done) / 1000000) +
                     " MB failed the check and are not offered)"
               : ""));
    } else if (auto* te = lt::alert_cast<lt::torrent_error_alert>(a)) {
      Log("error: " + std::string(te->torrent_name()) + ": " + te->error.message());
    } else if (auto* fe = lt::alert_cast<lt::file_error_alert>(a)) {
      Log("error: " + std::string(fe->filename()) + ": " + fe->error.message());
    }
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_scan_ > kRescanEvery) Rescan();
  if (now - last_connect_ > kConnectEvery) ConnectOut();
  return Status::Ok();
}

}  // namespace ggswarm::net
