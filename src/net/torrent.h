// A fragment directory as one BitTorrent v2 torrent (BEP 52): its files are manifest.json,
// gguf_header.dat and every fragment, each with its own SHA-256 Merkle tree, so each piece
// is checked as it arrives and any file can be fetched alone. The torrent's files lie
// directly in the directory: libtorrent's "NAME/file" paths are mapped to "file".
#pragma once

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/torrent_info.hpp>
#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "fragments/manifest.h"

namespace ggswarm::net {

using fragments::kTorrentFile;
constexpr uint64_t kMaxTorrentBytes = 64u << 20;  // a 70B model's torrent is a few MB
constexpr int kLargeModelPieceSize = 4 << 20;

struct TorrentOptions {
  bool hybrid = false;  // also v1 (SHA-1) metadata, for clients without v2
  // v1 only (SHA-1 pieces, no pad files): what v1-only clients (Transmission 3, aria2,
  // rtorrent) take; they refuse hybrid torrents. No per-file Merkle trees.
  bool v1 = false;
  // Bytes, a power of two ≥ 16 KiB; 0: 4 MiB past 256 MiB of files, else libtorrent's choice.
  int piece_size = 0;
  std::vector<std::string> trackers;
  bool overwrite = false;  // replace an existing model.torrent
  // The caller has just made or verified the whole directory: do not read it all twice.
  bool checked = false;
};

struct TorrentSummary {
  std::string name;
  std::string info_hash;     // v2 (SHA-256, 64 hex digits); a v1-only torrent's v1 (40)
  std::string info_hash_v1;  // hybrid torrents only (SHA-1, 40 hex digits)
  std::string magnet;
  uint64_t total_size = 0;  // bytes in the files, padding not counted
  int files = 0;
  int piece_size = 0;
};

// Writes DIR/model.torrent for the fragment directory DIR (checked first, like `verify`:
// a torrent is a promise about the bytes). Hashing reads every file once.
StatusOr<TorrentSummary> MakeTorrent(const std::string& dir, const TorrentOptions& o,
                                     const ProgressFn& progress = {});

// Reads a .torrent file (limits on size and structure apply; a bad file is an error).
StatusOr<lt::add_torrent_params> LoadTorrent(const std::string& path);
// The same for a torrent's bytes; `name` names it in errors.
StatusOr<lt::add_torrent_params> ParseTorrent(std::string_view bytes, const std::string& name);
TorrentSummary Summarize(const lt::torrent_info& ti);
std::string HexOf(const char* p, size_t n);

// What `fetch` was given: a magnet link, an info-hash (64 hex digits for v2, 40 for v1), a
// .torrent file or a directory holding model.torrent. Trackers, web seeds and peers named
// inside a magnet link or torrent are dropped: only the peers the user names are used.
StatusOr<lt::add_torrent_params> ParseModelRef(const std::string& ref);

// Checks that the torrent is a flat list of safely named files and maps each "NAME/file"
// to "file" in `renamed`.
Status FlatFileNames(const lt::file_storage& fs, std::map<lt::file_index_t, std::string>* renamed);
// The torrent's file holding `name` ("manifest.json", a fragment), or -1.
int FindFile(const lt::file_storage& fs, const std::string& name);

// The torrent holds exactly manifest.json, gguf_header.dat and the manifest's fragments,
// each of the size the manifest gives.
Status CheckTorrentMatchesManifest(const lt::file_storage& fs, const fragments::Manifest& m);

}  // namespace ggswarm::net
