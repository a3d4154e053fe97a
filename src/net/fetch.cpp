#include "net/fetch.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/peer_info.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/torrent_handle.hpp>
#include <libtorrent/torrent_status.hpp>
#include <libtorrent/write_resume_data.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/file.h"
#include "fragments/fragments.h"
#include "net/torrent.h"

namespace ggswarm::net {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kReconnectEvery = std::chrono::milliseconds(500);
constexpr auto kSaveResumeEvery = std::chrono::seconds(2);
// How often a fetch whose every named peer was banned forgets the bans and asks them again.
// libtorrent bans a peer alone on a piece that fails when the blocks of a peer banned just
// before went uncounted (its entry is gone), so one bad seed can take a good one with it.
constexpr int kBanAmnesties = 3;
constexpr lt::download_priority_t kFirst = lt::top_priority;
constexpr lt::download_priority_t kWanted = lt::default_priority;

std::string EndpointText(const lt::tcp::endpoint& e) {
  const auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

lt::tcp::endpoint TcpEndpoint(const Endpoint& e) {
  return {lt::make_address(e.host), static_cast<uint16_t>(e.port)};
}

Status WriteFile(const std::string& path, const std::vector<char>& bytes) {
  auto out = OutputFile::Create(path, /*overwrite=*/true);
  if (!out.ok()) return out.status();
  GGSWARM_RETURN_IF_ERROR(
      out->Write({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  return out->Commit();
}

bool SameModel(const lt::info_hash_t& a, const lt::info_hash_t& b) {
  if (a.has_v2() && b.has_v2()) return a.v2 == b.v2;
  if (a.has_v1() && b.has_v1()) return a.v1 == b.v1;
  return false;
}

std::string HashText(const lt::info_hash_t& ih) {
  return ih.has_v2() ? HexOf(ih.v2.data(), ih.v2.size()) : HexOf(ih.v1.data(), ih.v1.size());
}

// Checks each fragment against the manifest's SHA-256 as soon as its file is complete, on
// its own thread, so that the check overlaps the transfer instead of following it.
class FragmentChecker {
 public:
  explicit FragmentChecker(std::string dir) : dir_(std::move(dir)) {
    thread_ = std::thread([this] { Work(); });
  }
  ~FragmentChecker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Expect(const fragments::FragmentEntry& f) { expected_[f.file] = f; }
  // Queues `file` (once) if it is a fragment the manifest lists.
  void Add(const std::string& file) {
    if (!expected_.count(file)) return;
    std::lock_guard<std::mutex> l(mu_);
    if (!queued_.insert(file).second) return;
    queue_.push_back(file);
    cv_.notify_all();
  }
  // Waits for every queued file; returns those that did not match (or could not be read).
  std::vector<std::string> Finish() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return queue_.empty() && !busy_; });
    return std::exchange(failed_, {});
  }
  // Checks one file now, on the caller's thread.
  Status CheckNow(const std::string& file) {
    std::vector<uint8_t> buf(kIoChunk);
    return Check(file, buf);
  }

 private:
  void Work() {
    std::vector<uint8_t> buf(kIoChunk);
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;
      const std::string file = queue_.front();
      queue_.pop_front();
      busy_ = true;
      l.unlock();
      Status st = Check(file, buf);
      l.lock();
      busy_ = false;
      if (!st.ok()) failed_.push_back(file);
      cv_.notify_all();
    }
  }
  Status Check(const std::string& file, std::vector<uint8_t>& buf) {
    const Status st = fragments::CheckFragmentFile(dir_, expected_.at(file), buf);
    if (st.ok() || st.code() == Status::Code::kIOError) return st;
    return Status::Corruption("the fetched " + file + " does not match manifest.json: " +
                              st.message() + " (the torrent and its manifest disagree)");
  }

  std::string dir_;
  std::map<std::string, fragments::FragmentEntry> expected_;  // set before the first Add
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  bool busy_ = false, closing_ = false;
  std::vector<std::string> failed_;
  std::thread thread_;
};

class Fetcher {
 public:
  Fetcher(const FetchOptions& o, const ProgressFn& progress, const LogFn& log)
      : o_(o), progress_(progress), log_(log) {}

  StatusOr<FetchReport> Run();

 private:
  enum class Phase { kMetadata, kHead, kBody, kDone };

  void Log(const std::string& s) {
    if (log_) log_(s);
  }
  // Run's steps: open the session and add the torrent; move bytes until the selection is
  // complete (the head first, then the body); save, write the torrent, check every fragment.
  Status Start();
  Status Transfer(Clock::time_point t0);
  Status HeadStep(Clock::time_point t0);  // the head's files complete: go on to the body
  Status Finish();
  Status Prepare(lt::add_torrent_params& p);
  Status OnMetadata();
  Status StartBody();
  Status HandleAlerts();
  uint64_t BytesDone(const std::vector<bool>& wanted);
  void QueueCompleteFiles();  // hands every complete wanted file to the checker
  void Reconnect();
  void ForgiveIfAllBanned();
  void RecordPeers();
  Status SaveResume(bool wait);
  std::string Stalled() const;

  const FetchOptions& o_;
  ProgressFn progress_;
  LogFn log_;
  std::unique_ptr<lt::session> ses_;
  lt::torrent_handle h_;
  Phase phase_ = Phase::kMetadata;
  FetchReport r_;
  std::vector<bool> head_files_, wanted_;
  std::vector<uint64_t> sizes_;
  std::map<std::string, std::string> peer_errors_;  // last trouble, by peer address
  // Bytes from each connection (peer address and our end), the most it reported: a peer
  // reconnected counts its connections' bytes together.
  std::map<std::pair<std::string, std::string>, uint64_t> peer_bytes_;
  std::set<std::string> banned_;  // peers banned since the last amnesty
  int amnesties_ = 0;
  bool resume_pending_ = false;
  Clock::time_point t0_ = Clock::now();
  bool resumed_ = false;
  bool head_flushing_ = false, head_flushed_ = false;  // manifest and header on disk
  std::unique_ptr<FragmentChecker> checker_;
  lt::add_torrent_params last_resume_;  // from the last save: info dict and Merkle trees
  std::string resume_path_;
};

Status Fetcher::Prepare(lt::add_torrent_params& p) {
  resume_path_ = o_.out_dir + "/" + kFetchResumeFile;
  std::error_code ec;
  if (PathExists(resume_path_)) {
    auto bytes = ReadSmallFile(resume_path_, kMaxTorrentBytes * 4);
    if (!bytes.ok()) return bytes.status();
    lt::error_code lec;
    lt::add_torrent_params saved =
        lt::read_resume_data(lt::span<char const>(bytes->data(), bytes->size()), lec);
    if (lec)
      return Status::Corruption(resume_path_ + ": unreadable (" + lec.message() +
                                "); remove it to start the fetch again");
    if (!SameModel(saved.info_hashes, p.info_hashes))
      return Status::InvalidArgument(o_.out_dir + " holds an interrupted fetch of another model (" +
                                     HashText(saved.info_hashes) + ")");
    if (!saved.ti && p.ti) saved.ti = p.ti;
    saved.trackers.clear();
    saved.peers.clear();
    saved.url_seeds.clear();
    saved.dht_nodes.clear();
    p = std::move(saved);
    resumed_ = true;
    Log("resuming the interrupted fetch in " + o_.out_dir);
  } else if (fs::exists(o_.out_dir, ec)) {
    if (!fs::is_directory(o_.out_dir, ec))
      return Status::InvalidArgument(o_.out_dir + " exists and is not a directory");
    if (!fs::is_empty(o_.out_dir, ec))
      return Status::Exists(o_.out_dir +
                            " is not empty and holds no interrupted fetch; fetch into a new or "
                            "empty directory");
  } else if (!fs::create_directories(o_.out_dir, ec) && ec) {
    return Status::IOError("cannot create " + o_.out_dir + ": " + ec.message());
  }
  p.save_path = fs::absolute(o_.out_dir, ec).string();
  p.flags |= lt::torrent_flags::default_dont_download;
  p.flags &= ~(lt::torrent_flags::auto_managed | lt::torrent_flags::paused |
               lt::torrent_flags::upload_mode | lt::torrent_flags::seed_mode);
  p.file_priorities.clear();
  p.trackers = o_.swarm.trackers;
  if (o_.swarm.upload_limit > 0) p.upload_limit = static_cast<int>(o_.swarm.upload_limit);
  if (o_.swarm.download_limit > 0) p.download_limit = static_cast<int>(o_.swarm.download_limit);
  // Files are renamed before the torrent is added when its metadata is already known;
  // nothing is downloaded until OnMetadata() chooses (default_dont_download).
  if (p.ti) GGSWARM_RETURN_IF_ERROR(FlatFileNames(p.ti->files(), &p.renamed_files));
  r_.info_hash = HashText(p.info_hashes);
  return Status::Ok();
}

// The metadata is known (from the torrent, the resume data or a peer): lay the files out
// flat in OUT_DIR and ask for manifest.json and the header first.
Status Fetcher::OnMetadata() {
  auto ti = h_.torrent_file();
  if (!ti) return Status::Corruption("no metadata after the metadata arrived");
  const lt::file_storage& files = ti->orig_files();  // as in the torrent, before renames
  std::map<lt::file_index_t, std::string> renamed;
  GGSWARM_RETURN_IF_ERROR(FlatFileNames(files, &renamed));
  for (const auto& [i, name] : renamed) {
    if (ti->files().file_path(i) != name) h_.rename_file(i, name);
  }
  r_.name = ti->name();
  const size_t n = static_cast<size_t>(files.num_files());
  sizes_.resize(n);
  head_files_.assign(n, false);
  for (lt::file_index_t i : files.file_range())
    sizes_[static_cast<size_t>(i)] = static_cast<uint64_t>(files.file_size(i));
  std::vector<lt::download_priority_t> prio(n, lt::dont_download);
  for (const char* head : {fragments::kManifestFile, fragments::kHeaderFile}) {
    const int i = FindFile(files, head);
    if (i < 0) return Status::Corruption(std::string("the torrent holds no ") + head);
    head_files_[static_cast<size_t>(i)] = true;
    prio[static_cast<size_t>(i)] = kFirst;
  }
  // A full fetch asks for the fragments at once, behind manifest.json and the header (a
  // round trip saved); a partial one needs the manifest to know which fragments it wants.
  // A resumed one waits too, so that what it had is counted before anything new arrives.
  if (o_.selection.all && !resumed_) {
    for (lt::file_index_t i : files.file_range()) {
      const size_t k = static_cast<size_t>(i);
      if (!files.pad_file_at(i) && prio[k] == lt::dont_download) prio[k] = kWanted;
    }
  }
  h_.prioritize_files(prio);
  // With nothing wanted until now, the torrent counted as finished and libtorrent closed the
  // connections (seed to seed): open them again at once.
  Reconnect();
  phase_ = Phase::kHead;
  return Status::Ok();
}

// manifest.json and the header are here and verified by their Merkle trees: check them,
// check the torrent against them, and ask for the selected fragments.
Status Fetcher::StartBody() {
  auto m = fragments::Manifest::Load(o_.out_dir);
  if (!m.ok()) return m.status().WithContext("manifest.json from the swarm");
  auto header = fragments::LoadHeader(o_.out_dir, *m);
  if (!header.ok()) return header.status().WithContext("the swarm's model");
  auto ti = h_.torrent_file();
  const lt::file_storage& files = ti->orig_files();
  GGSWARM_RETURN_IF_ERROR(CheckTorrentMatchesManifest(files, *m));
  GGSWARM_RETURN_IF_ERROR(o_.selection.Check(*m));
  std::set<std::string> selected;
  checker_ = std::make_unique<FragmentChecker>(o_.out_dir);
  for (const auto& f : m->fragments) {
    if (!o_.selection.Wants(f, *m)) continue;
    selected.insert(f.file);
    checker_->Expect(f);
  }
  wanted_.assign(sizes_.size(), false);
  std::vector<lt::download_priority_t> prio(sizes_.size(), lt::dont_download);
  for (lt::file_index_t i : files.file_range()) {
    const size_t k = static_cast<size_t>(i);
    if (files.pad_file_at(i)) continue;
    if (head_files_[k] || selected.count(std::string(files.file_name(i)))) {
      wanted_[k] = true;
      prio[k] = head_files_[k] ? kFirst : kWanted;
      r_.files++;
      r_.selected_bytes += sizes_[k];
    }
  }
  GGSWARM_RETURN_IF_ERROR(fragments::SaveSelection(o_.out_dir, o_.selection));
  std::vector<bool> fragments_only = wanted_;
  for (size_t i = 0; i < head_files_.size(); ++i) fragments_only[i] = wanted_[i] && !head_files_[i];
  // Verified before this run: from the resume data (a fresh fetch starts from nothing; its
  // fragments may already be arriving behind the manifest).
  r_.had_bytes = resumed_ ? BytesDone(fragments_only) : 0;
  h_.prioritize_files(prio);
  Reconnect();
  QueueCompleteFiles();
  Log("fetching " + std::to_string(r_.files) + " files (" + o_.selection.Describe() + ", " +
      std::to_string(r_.selected_bytes / 1000000) + " MB) of " + m->name);
  if (r_.had_bytes > 0)
    Log("resumed: " + std::to_string(r_.had_bytes) + " bytes of fragments already verified");
  phase_ = Phase::kBody;
  return Status::Ok();
}

void Fetcher::QueueCompleteFiles() {
  std::vector<std::int64_t> done;
  h_.file_progress(done, lt::torrent_handle::piece_granularity);
  const lt::file_storage& files = h_.torrent_file()->orig_files();
  for (size_t k = 0; k < done.size() && k < wanted_.size(); ++k) {
    if (wanted_[k] && static_cast<uint64_t>(done[k]) == sizes_[k])
      checker_->Add(std::string(files.file_name(lt::file_index_t(static_cast<int>(k)))));
  }
}

uint64_t Fetcher::BytesDone(const std::vector<bool>& wanted) {
  std::vector<std::int64_t> done;
  h_.file_progress(done, lt::torrent_handle::piece_granularity);
  uint64_t sum = 0;
  for (size_t i = 0; i < done.size() && i < wanted.size(); ++i) {
    if (wanted[i]) sum += static_cast<uint64_t>(done[i]);
  }
  return sum;
}

Status Fetcher::HandleAlerts() {
  std::vector<lt::alert*> alerts;
  ses_->pop_alerts(&alerts);
  for (lt::alert* a : alerts) {
    if (std::getenv("GGSWARM_TRACE"))
      Log(std::to_string(std::chrono::duration<double>(Clock::now() - t0_).count()) + " " +
          a->message());
    if (lt::alert_cast<lt::metadata_received_alert>(a)) {
      if (phase_ == Phase::kMetadata) GGSWARM_RETURN_IF_ERROR(OnMetadata());
    } else if (auto* fc = lt::alert_cast<lt::file_completed_alert>(a)) {
      if (checker_)
        checker_->Add(std::string(h_.torrent_file()->orig_files().file_name(fc->index)));
    } else if (lt::alert_cast<lt::cache_flushed_alert>(a)) {
      head_flushed_ = head_flushing_;
    } else if (auto* hf = lt::alert_cast<lt::hash_failed_alert>(a)) {
      r_.hash_failures++;
      Log("piece " + std::to_string(static_cast<int>(hf->piece_index)) +
          " failed its hash check: discarded, asking again");
    } else if (auto* pd = lt::alert_cast<lt::peer_disconnected_alert>(a)) {
      if (pd->error) peer_errors_[EndpointText(pd->endpoint)] = pd->error.message();
    } else if (auto* pe = lt::alert_cast<lt::peer_error_alert>(a)) {
      peer_errors_[EndpointText(pe->endpoint)] = pe->error.message();
    } else if (auto* pb = lt::alert_cast<lt::peer_ban_alert>(a)) {
      Log("banned " + EndpointText(pb->endpoint) + ": it sent data that failed the hash check");
      peer_errors_[EndpointText(pb->endpoint)] = "banned for sending bad data";
      banned_.insert(EndpointText(pb->endpoint));
    } else if (auto* te = lt::alert_cast<lt::torrent_error_alert>(a)) {
      return Status::IOError("fetching into " + o_.out_dir + ": " + te->error.message() +
                             (te->filename()[0] ? std::string(" (") + te->filename() + ")" : ""));
    } else if (auto* fe = lt::alert_cast<lt::file_error_alert>(a)) {
      return Status::IOError("writing " + std::string(fe->filename()) + ": " + fe->error.message());
    } else if (auto* mf = lt::alert_cast<lt::metadata_failed_alert>(a)) {
      peer_errors_["metadata"] =
          "a peer sent metadata that does not match the info-hash (" + mf->error.message() + ")";
    } else if (auto* sr = lt::alert_cast<lt::save_resume_data_alert>(a)) {
      resume_pending_ = false;
      last_resume_ = sr->params;
      GGSWARM_RETURN_IF_ERROR(WriteFile(resume_path_, lt::write_resume_data_buf(sr->params)));
    } else if (lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
      resume_pending_ = false;
    }
  }
  return Status::Ok();
}

void Fetcher::RecordPeers() {
  std::vector<lt::peer_info> peers;
  h_.get_peer_info(peers);
  for (const auto& p : peers) {
    uint64_t& b = peer_bytes_[{EndpointText(p.ip), EndpointText(p.local_endpoint)}];
    b = std::max<uint64_t>(b, static_cast<uint64_t>(p.total_download));
  }
}

void Fetcher::Reconnect() {
  std::vector<lt::peer_info> peers;
  h_.get_peer_info(peers);
  std::set<std::string> connected;
  for (const auto& p : peers) connected.insert(EndpointText(p.ip));
  for (const Endpoint& e : o_.peers) {
    const lt::tcp::endpoint ep = TcpEndpoint(e);
    if (!connected.count(EndpointText(ep))) h_.connect_peer(ep);
  }
}

// When every named peer has been banned, forgets the bans (a fresh peer list), up to
// kBanAmnesties times, so that the Reconnect that follows asks them again: pieces that
// passed are kept, and a peer that still sends bad data is banned again on a piece of its
// own.
void Fetcher::ForgiveIfAllBanned() {
  if (o_.peers.empty() || amnesties_ >= kBanAmnesties) return;
  for (const Endpoint& e : o_.peers) {
    if (!banned_.count(EndpointText(TcpEndpoint(e)))) return;
  }
  ++amnesties_;
  Log("every peer was banned; forgetting the bans and asking them again (" +
      std::to_string(amnesties_) + " of " + std::to_string(kBanAmnesties) + ")");
  banned_.clear();
  h_.clear_peers();
}

// Saves the resume data (flushing libtorrent's writes first). With `wait`, returns once a
// save issued now has been written, not an earlier one still under way.
Status Fetcher::SaveResume(bool wait) {
  if (!h_.is_valid() || phase_ == Phase::kMetadata) return Status::Ok();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  auto wait_pending = [&]() -> Status {
    while (resume_pending_ && Clock::now() < deadline) {
      ses_->wait_for_alert(std::chrono::milliseconds(100));
      GGSWARM_RETURN_IF_ERROR(HandleAlerts());
    }
    return Status::Ok();
  };
  if (wait) GGSWARM_RETURN_IF_ERROR(wait_pending());
  if (!resume_pending_) {
    resume_pending_ = true;
    h_.save_resume_data(lt::torrent_handle::save_info_dict | lt::torrent_handle::flush_disk_cache);
  }
  return wait ? wait_pending() : Status::Ok();
}

std::string Fetcher::Stalled() const {
  std::string s;
  if (phase_ == Phase::kMetadata)
    s = "no peer sent the metadata of " + r_.info_hash + " (does any of them have this model?)";
  else
    s = "no data arrived";
  s += " within " + std::to_string(static_cast<int>(o_.timeout_s)) + " s";
  // What each connected peer did: a peer that answered but sent nothing has none of the
  // wanted pieces, or keeps this fetch choked (some clients unchoke only every 10 s or so).
  std::map<std::string, std::string> did;
  if (h_.is_valid()) {
    std::vector<lt::peer_info> peers;
    h_.get_peer_info(peers);
    std::vector<lt::download_priority_t> wanted;
    lt::typed_bitfield<lt::piece_index_t> have;
    if (phase_ != Phase::kMetadata) {
      wanted = h_.get_piece_priorities();
      have = h_.status(lt::torrent_handle::query_pieces).pieces;
    }
    for (const lt::peer_info& p : peers) {
      int has = 0, useful = 0;
      for (lt::piece_index_t i(0); i < p.pieces.end_index(); ++i) {
        if (!p.pieces[i]) continue;
        ++has;
        if (static_cast<size_t>(i) < wanted.size() &&
            wanted[static_cast<size_t>(i)] != lt::dont_download &&
            !(i < have.end_index() && have[i]))
          ++useful;
      }
      std::string d = "connected, ";
      if (phase_ == Phase::kMetadata)
        d += "but it did not send the metadata";
      else if (has == 0)
        d += "but it has none of the pieces (it said so: HAVE_NONE or an empty bitfield)";
      else if (useful == 0)
        d += "but it has none of the wanted pieces that this fetch lacks (it has " +
             std::to_string(has) + " others)";
      else if (p.flags & lt::peer_info::choked)
        d += "it has " + std::to_string(useful) +
             " wanted pieces but keeps this fetch choked (it sends nothing until it unchokes)";
      else
        d += "unchoked with " + std::to_string(useful) + " wanted pieces, yet sent nothing";
      did[EndpointText(p.ip)] = d;
    }
  }
  for (const Endpoint& e : o_.peers) {
    const std::string ep = EndpointText(TcpEndpoint(e));
    auto it = peer_errors_.find(ep);
    auto d = did.find(ep);
    s += "; " + e.ToString() + ": " +
         (banned_.count(ep)          ? std::string("banned for sending bad data")
          : d != did.end()           ? d->second
          : it == peer_errors_.end() ? std::string("no answer")
                                     : it->second);
  }
  if (auto it = peer_errors_.find("metadata"); it != peer_errors_.end()) s += "; " + it->second;
  return s;
}

StatusOr<FetchReport> Fetcher::Run() {
  const auto t0 = Clock::now();
  GGSWARM_RETURN_IF_ERROR(Start());
  GGSWARM_RETURN_IF_ERROR(Transfer(t0));
  GGSWARM_RETURN_IF_ERROR(Finish());
  r_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r_;
}

Status Fetcher::Start() {
  if (o_.peers.empty() && !o_.swarm.dht && !o_.swarm.lsd && o_.swarm.trackers.empty())
    return Status::InvalidArgument("no peers: name at least one with --peer HOST:PORT");
  auto ref = ParseModelRef(o_.ref);
  if (!ref.ok()) return ref.status();
  lt::add_torrent_params p = std::move(*ref);
  GGSWARM_RETURN_IF_ERROR(Prepare(p));
  auto ses = OpenSession(o_.swarm);
  if (!ses.ok()) return ses.status();
  ses_ = std::move(*ses);
  const bool has_metadata = p.ti != nullptr;
  lt::error_code ec;
  h_ = ses_->add_torrent(std::move(p), ec);
  if (ec) return Status::InvalidArgument("cannot add the torrent: " + ec.message());
  if (has_metadata) GGSWARM_RETURN_IF_ERROR(OnMetadata());
  Reconnect();
  return Status::Ok();
}

Status Fetcher::HeadStep(Clock::time_point t0) {
  const lt::torrent_status st = h_.status();
  const bool checking = st.state == lt::torrent_status::checking_files ||
                        st.state == lt::torrent_status::checking_resume_data;
  uint64_t head_bytes = 0;
  for (size_t i = 0; i < head_files_.size(); ++i) head_bytes += head_files_[i] ? sizes_[i] : 0;
  if (!checking && !head_flushing_ && BytesDone(head_files_) == head_bytes) {
    // The pieces passed their checks; libtorrent may not have written them out yet.
    head_flushing_ = true;
    h_.flush_cache();
  }
  if (!head_flushed_) return Status::Ok();
  if (Status st = StartBody(); !st.ok()) {
    // The model is not what it claims: nothing here is worth resuming. A fresh fetch owns
    // everything in its directory, so it takes it all away again.
    if (!resumed_) {
      ses_->remove_torrent(h_, lt::session::delete_files);
      h_ = {};
      std::error_code ec;
      fs::remove_all(o_.out_dir, ec);
    }
    return st;
  }
  r_.head_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return Status::Ok();
}

Status Fetcher::Transfer(Clock::time_point t0) {
  auto last_change = Clock::now(), last_reconnect = Clock::now(), last_save = Clock::now();
  uint64_t last_done = 0;
  int64_t last_payload = 0;
  Phase last_phase = phase_;
  while (phase_ != Phase::kDone) {
    ses_->wait_for_alert(std::chrono::milliseconds(200));
    GGSWARM_RETURN_IF_ERROR(HandleAlerts());
    const auto now = Clock::now();
    const lt::torrent_status st = h_.status();
    if (st.errc) return Status::IOError("fetching into " + o_.out_dir + ": " + st.errc.message());
    if (phase_ == Phase::kHead) GGSWARM_RETURN_IF_ERROR(HeadStep(t0));
    uint64_t done = 0;
    if (phase_ == Phase::kBody) {
      done = BytesDone(wanted_);
      if (progress_) progress_(done, r_.selected_bytes);
      if (done == r_.selected_bytes) {
        phase_ = Phase::kDone;
        r_.body_seconds =
            std::chrono::duration<double>(Clock::now() - t0).count() - r_.head_seconds;
      }
    }
    RecordPeers();
    if (done != last_done || st.total_payload_download != last_payload || phase_ != last_phase) {
      last_change = now;
      last_done = done;
      last_payload = st.total_payload_download;
      last_phase = phase_;
    }
    if (now - last_change > std::chrono::duration<double>(o_.timeout_s)) {
      (void)SaveResume(true);
      return Status::IOError(Stalled());
    }
    if (now - last_reconnect > kReconnectEvery) {
      ForgiveIfAllBanned();
      Reconnect();
      last_reconnect = now;
    }
    if (now - last_save > kSaveResumeEvery) {
      GGSWARM_RETURN_IF_ERROR(SaveResume(false));
      last_save = now;
    }
    r_.downloaded_bytes = static_cast<uint64_t>(st.total_payload_download);
  }
  return Status::Ok();
}

Status Fetcher::Finish() {
  RecordPeers();
  GGSWARM_RETURN_IF_ERROR(SaveResume(true));
  r_.downloaded_bytes = static_cast<uint64_t>(h_.status().total_payload_download);
  for (const auto& [conn, bytes] : peer_bytes_) {
    if (bytes > 0) r_.from_peer[conn.first] += bytes;
  }

  // A full fetch can be seeded on: write its torrent (piece layers included).
  if (o_.selection.all && !PathExists(o_.out_dir + "/" + kTorrentFile)) {
    try {
      GGSWARM_RETURN_IF_ERROR(
          WriteFile(o_.out_dir + "/" + kTorrentFile, lt::write_torrent_file_buf(last_resume_, {})));
      r_.wrote_torrent = true;
    } catch (const std::exception& e) {
      Log(std::string("note: no model.torrent written: ") + e.what());
    }
  }

  // Every fragment of the selection against the manifest, as `verify` does (the header
  // was checked before the fragments were asked for). Most were checked during the transfer.
  const auto t_check = Clock::now();
  QueueCompleteFiles();
  // A file is complete when its pieces passed their hash checks, which may be before
  // libtorrent wrote all of them out: what failed early is checked again once the writes are
  // flushed (the last resume save above flushed them).
  for (const std::string& file : checker_->Finish())
    GGSWARM_RETURN_IF_ERROR(checker_->CheckNow(file));
  r_.check_seconds = std::chrono::duration<double>(Clock::now() - t_check).count();
  ses_->remove_torrent(h_);
  return Status::Ok();
}

}  // namespace

StatusOr<FetchReport> Fetch(const FetchOptions& o, const ProgressFn& progress, const LogFn& log) {
  Fetcher f(o, progress, log);
  try {
    return f.Run();
  } catch (const std::exception& e) {  // libtorrent reports some misuse by throwing
    return Status::IOError(std::string("fetch: ") + e.what());
  }
}

StatusOr<std::string> FetchStage(FetchOptions o, const ProgressFn& progress, const LogFn& log) {
  if (o.out_dir.empty()) {
    auto ref = ParseModelRef(o.ref);
    if (!ref.ok()) return ref.status();
    const lt::info_hash_t& ih = ref->ti ? ref->ti->info_hashes() : ref->info_hashes;
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    o.out_dir = std::string(xdg ? xdg : (home ? std::string(home) + "/.cache" : "/tmp")) +
                "/ggswarm/" + HashText(ih).substr(0, 16);
    if (!o.selection.all)
      o.out_dir += "-layers-" + std::to_string(o.selection.first_layer) + "-" +
                   std::to_string(o.selection.last_layer);
  }
  if (!o.selection.all) o.selection.embedding = o.selection.first_layer == 0;
  auto r = Fetch(o, progress, log);
  if (!r.ok()) return r.status();
  if (!o.selection.all) {
    auto m = fragments::Manifest::Load(o.out_dir);
    if (!m.ok()) return m.status();
    int n_layer = 0;
    for (const auto& f : m->fragments) n_layer = std::max(n_layer, f.layer + 1);
    if (o.selection.last_layer == n_layer - 1) {
      o.selection.head = true;
      auto h = Fetch(o, progress, log);
      if (!h.ok()) return h.status();
    }
  }
  return o.out_dir;
}

}  // namespace ggswarm::net
