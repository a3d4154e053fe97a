#include "net/torrent.h"

#include <unistd.h>

#include <filesystem>
#include <libtorrent/bencode.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/load_torrent.hpp>
#include <libtorrent/magnet_uri.hpp>
#include <libtorrent/settings_pack.hpp>
#include <set>

#include "base/file.h"
#include "fragments/fragments.h"
#include "fragments/naming.h"

namespace ggswarm::net {
namespace {

namespace fs = std::filesystem;

bool IsHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c); });
}

template <class Hash>
bool FromHex(const std::string& s, Hash* h) {
  if (s.size() != 2 * Hash::size() || !IsHex(s)) return false;
  for (size_t i = 0; i < Hash::size(); ++i)
    (*h)[static_cast<int>(i)] = static_cast<char>(std::stoi(s.substr(2 * i, 2), nullptr, 16));
  return true;
}

void DropOutsideSources(lt::add_torrent_params& p) {
  p.trackers.clear();
  p.tracker_tiers.clear();
  p.url_seeds.clear();
  p.dht_nodes.clear();
  p.peers.clear();
}

// A temporary directory holding one link, NAME → dir, so that libtorrent, which reads a
// torrent's files at SAVE_PATH/NAME/file, reads them from `dir`.
class LinkedRoot {
 public:
  static StatusOr<LinkedRoot> Make(const std::string& dir, const std::string& name) {
    std::string templ = (fs::temp_directory_path() / "ggswarm-torrent-XXXXXX").string();
    if (!::mkdtemp(templ.data())) return Status::IOError("cannot make a temporary directory");
    LinkedRoot r;
    r.tmp_ = templ;
    std::error_code ec;
    fs::create_directory_symlink(fs::absolute(dir, ec), templ + "/" + name, ec);
    if (ec) return Status::IOError("cannot link " + dir + " for hashing: " + ec.message());
    return r;
  }
  LinkedRoot() = default;
  LinkedRoot(LinkedRoot&& o) noexcept : tmp_(std::exchange(o.tmp_, "")) {}
  ~LinkedRoot() {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);  // removes the link, not what it points to
  }
  const std::string& path() const { return tmp_; }

 private:
  std::string tmp_;
};

}  // namespace

std::string HexOf(const char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[(static_cast<unsigned char>(p[i]) >> 4) & 15];
    s += kDigits[static_cast<unsigned char>(p[i]) & 15];
  }
  return s;
}

TorrentSummary Summarize(const lt::torrent_info& ti) {
  TorrentSummary s;
  s.name = ti.name();
  const lt::info_hash_t ih = ti.info_hashes();
  if (ih.has_v2()) s.info_hash = HexOf(ih.v2.data(), ih.v2.size());
  if (ih.has_v1()) (ih.has_v2() ? s.info_hash_v1 : s.info_hash) = HexOf(ih.v1.data(), ih.v1.size());
  s.magnet = lt::make_magnet_uri(ti);
  const lt::file_storage& files = ti.files();
  for (lt::file_index_t i : files.file_range()) {
    if (files.pad_file_at(i)) continue;
    s.total_size += static_cast<uint64_t>(files.file_size(i));
    s.files++;
  }
  s.piece_size = ti.piece_length();
  return s;
}

StatusOr<TorrentSummary> MakeTorrent(const std::string& dir, const TorrentOptions& o,
                                     const ProgressFn& progress) {
  const std::string out_path = dir + "/" + kTorrentFile;
  if (!o.overwrite && PathExists(out_path))
    return Status::Exists(out_path + " already exists (--force replaces it)");
  if (o.hybrid && o.v1) return Status::InvalidArgument("--hybrid and --v1 exclude each other");
  if (o.piece_size != 0 && (o.piece_size < 16384 || (o.piece_size & (o.piece_size - 1))))
    return Status::InvalidArgument("piece size " + std::to_string(o.piece_size) +
                                   ": must be a power of two of at least 16 KiB");
  fragments::Manifest m;
  if (o.checked) {
    auto loaded = fragments::Manifest::Load(dir);
    if (!loaded.ok()) return loaded.status();
    m = std::move(*loaded);
  } else {
    auto check = fragments::VerifyDirectory(dir);
    if (!check.ok()) return check.status();
    if (!check->ok()) {
      const auto& p = check->problems.front();
      return Status::Corruption(dir + " does not verify (" + p.file + ": " + p.what +
                                "); a torrent of it would share bad data");
    }
    if (!check->not_selected.empty())
      return Status::InvalidArgument(dir + " is a partial copy (" + check->selection +
                                     "); a torrent needs every fragment");
    m = std::move(check->manifest);
  }
  const std::string name = fragments::SanitizeName(m.name.empty() ? "model" : m.name);

  lt::file_storage files;
  auto add = [&](const std::string& file) -> Status {
    auto in = InputFile::Open(dir + "/" + file);
    if (!in.ok()) return in.status();
    files.add_file(name + "/" + file, static_cast<std::int64_t>(in->size()));
    return Status::Ok();
  };
  GGSWARM_RETURN_IF_ERROR(add(fragments::kManifestFile));
  GGSWARM_RETURN_IF_ERROR(add(fragments::kHeaderFile));
  for (const auto& f : m.fragments) GGSWARM_RETURN_IF_ERROR(add(f.file));

  // Pieces of 4 MiB for models past 256 MiB: fewer pieces to pick, request and hash per
  // byte (a 1.1 GB fetch on loopback: 320 MB/s with libtorrent's 512 KiB, 400 with these).
  // A fragment of 10 MiB is then 3 pieces; a smaller file is one piece of its own size.
  int piece_size = o.piece_size;
  if (piece_size == 0 && files.total_size() > (256 << 20)) piece_size = kLargeModelPieceSize;
  lt::create_torrent t(files, piece_size,
                       o.v1       ? lt::create_torrent::v1_only
                       : o.hybrid ? lt::create_flags_t{}
                                  : lt::create_torrent::v2_only);
  t.set_creator("ggswarm 0.1");
  t.set_comment(("ggswarm fragments of " + m.file_name + " (sha256 " + m.sha256 + ")").c_str());
  for (size_t i = 0; i < o.trackers.size(); ++i) t.add_tracker(o.trackers[i], static_cast<int>(i));

  auto root = LinkedRoot::Make(dir, name);
  if (!root.ok()) return root.status();
  lt::settings_pack hash_settings;
  hash_settings.set_int(lt::settings_pack::hashing_threads, 2);
  hash_settings.set_int(lt::settings_pack::aio_threads, 2);
  const uint64_t total = static_cast<uint64_t>(files.total_size());
  const int pieces = t.num_pieces();
  lt::error_code ec;
  lt::set_piece_hashes(
      t, root->path(), hash_settings,
      [&](lt::piece_index_t p) {
        if (progress && pieces > 0)
          progress(total * (static_cast<int>(p) + 1) / static_cast<uint64_t>(pieces), total);
      },
      ec);
  if (ec) return Status::IOError("hashing " + dir + " for the torrent: " + ec.message());

  std::vector<char> buf;
  try {
    lt::bencode(std::back_inserter(buf), t.generate());
  } catch (const std::exception& e) {
    return Status::IOError(std::string("cannot make the torrent: ") + e.what());
  }
  auto out = OutputFile::Create(out_path, o.overwrite);
  if (!out.ok()) return out.status();
  GGSWARM_RETURN_IF_ERROR(out->Write({reinterpret_cast<const uint8_t*>(buf.data()), buf.size()}));
  GGSWARM_RETURN_IF_ERROR(out->Commit());
  auto loaded = LoadTorrent(out_path);
  if (!loaded.ok()) return loaded.status();
  return Summarize(*loaded->ti);
}

StatusOr<lt::add_torrent_params> LoadTorrent(const std::string& path) {
  auto bytes = ReadSmallFile(path, kMaxTorrentBytes);
  if (!bytes.ok()) return bytes.status();
  return ParseTorrent(*bytes, path);
}

StatusOr<lt::add_torrent_params> ParseTorrent(std::string_view bytes, const std::string& name) {
  if (bytes.size() > kMaxTorrentBytes)
    return Status::Corruption(name + ": larger than " + std::to_string(kMaxTorrentBytes >> 20) +
                              " MiB, not a model's torrent");
  lt::load_torrent_limits limits;
  limits.max_buffer_size = static_cast<int>(kMaxTorrentBytes);
  limits.max_pieces = 1 << 22;
  limits.max_decode_depth = 100;
  limits.max_decode_tokens = 10'000'000;
  try {
    lt::add_torrent_params p =
        lt::load_torrent_buffer(lt::span<char const>(bytes.data(), bytes.size()), limits);
    if (!p.ti || !p.ti->is_valid()) return Status::Corruption(name + ": not a valid torrent");
    DropOutsideSources(p);
    return p;
  } catch (const std::exception& e) {
    return Status::Corruption(name + ": not a valid torrent (" + e.what() + ")");
  }
}

StatusOr<lt::add_torrent_params> ParseModelRef(const std::string& ref) {
  lt::add_torrent_params p;
  if (ref.rfind("magnet:", 0) == 0) {
    lt::error_code ec;
    lt::parse_magnet_uri(ref, p, ec);
    if (ec) return Status::InvalidArgument("magnet link: " + ec.message());
    DropOutsideSources(p);
    return p;
  }
  if (FromHex(ref, &p.info_hashes.v2)) return p;
  if (FromHex(ref, &p.info_hashes.v1)) return p;
  if (IsDirectory(ref)) return LoadTorrent(ref + "/" + kTorrentFile);
  if (PathExists(ref)) return LoadTorrent(ref);
  return Status::InvalidArgument("'" + ref +
                                 "' is not a magnet link, an info-hash (64 hex digits, or 40 for "
                                 "v1) or an existing .torrent file");
}

Status FlatFileNames(const lt::file_storage& files,
                     std::map<lt::file_index_t, std::string>* renamed) {
  const std::string root = files.name();
  for (lt::file_index_t i : files.file_range()) {
    if (files.pad_file_at(i)) continue;
    const std::string path = files.file_path(i);
    const std::string leaf(files.file_name(i));
    if (path != root + "/" + leaf || !fragments::IsSafeFileName(leaf))
      return Status::Corruption("the torrent holds '" + path +
                                "': a ggswarm model torrent is a flat list of fragment files");
    if (renamed) (*renamed)[i] = leaf;
  }
  return Status::Ok();
}

int FindFile(const lt::file_storage& files, const std::string& name) {
  for (lt::file_index_t i : files.file_range()) {
    if (!files.pad_file_at(i) && files.file_name(i) == name) return static_cast<int>(i);
  }
  return -1;
}

Status CheckTorrentMatchesManifest(const lt::file_storage& files, const fragments::Manifest& m) {
  std::map<std::string, uint64_t> expect;
  expect[fragments::kHeaderFile] = m.header_size;
  for (const auto& f : m.fragments) expect[f.file] = f.size;
  std::set<std::string> seen;
  for (lt::file_index_t i : files.file_range()) {
    if (files.pad_file_at(i)) continue;
    const std::string leaf(files.file_name(i));
    const uint64_t size = static_cast<uint64_t>(files.file_size(i));
    seen.insert(leaf);
    if (leaf == fragments::kManifestFile) continue;
    auto it = expect.find(leaf);
    if (it == expect.end())
      return Status::Corruption("the torrent does not match its manifest: it holds " + leaf +
                                ", which manifest.json does not list");
    if (it->second != size)
      return Status::Corruption("the torrent does not match its manifest: " + leaf + " is " +
                                std::to_string(size) + " bytes in the torrent, " +
                                std::to_string(it->second) + " in manifest.json");
  }
  for (const auto& [file, size] : expect) {
    if (!seen.count(file))
      return Status::Corruption("the torrent does not match its manifest: manifest.json lists " +
                                file + ", which the torrent does not hold");
  }
  return Status::Ok();
}

}  // namespace ggswarm::net
