// `ggswarm fetch`: a model (or the layers a stage needs) from the peers the user names.
// First the torrent's metadata (when only its info-hash is known), then manifest.json and
// gguf_header.dat, then exactly the fragments of the selection, from every peer that has
// them. libtorrent checks each piece against the torrent's SHA-256 Merkle trees as it
// arrives; at the end every fragment is checked against the manifest, as `verify` does.
// Interrupted, a fetch leaves OUT_DIR/.ggswarm-fetch.resume, and run again it downloads
// only what was not verified yet.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "fragments/selection.h"
#include "net/session.h"

namespace ggswarm::net {

constexpr const char* kFetchResumeFile = ".ggswarm-fetch.resume";

struct FetchOptions {
  std::string ref;      // magnet link, info-hash, .torrent file
  std::string out_dir;  // new, empty, or an interrupted fetch of the same model
  std::vector<Endpoint> peers;
  fragments::Selection selection;
  SwarmOptions swarm;
  double timeout_s = 60;  // give up when nothing arrives for this long
};

struct FetchReport {
  std::string name, info_hash;
  size_t files = 0;               // files of the selection (manifest and header included)
  uint64_t selected_bytes = 0;    // their size
  uint64_t had_bytes = 0;         // of those, verified before this run (a resumed fetch)
  uint64_t downloaded_bytes = 0;  // payload received in this run, rejected pieces included
  int hash_failures = 0;          // pieces that failed their hash check and were fetched again
  std::map<std::string, uint64_t> from_peer;  // payload bytes received, by peer address
  bool wrote_torrent = false;                 // OUT_DIR/model.torrent (a full fetch)
  double seconds = 0;                         // the whole fetch
  double head_seconds = 0;   // until manifest.json and the header were in (metadata too)
  double body_seconds = 0;   // the fragments
  double check_seconds = 0;  // the final check of every fragment against the manifest
};

using LogFn = std::function<void(const std::string&)>;

StatusOr<FetchReport> Fetch(const FetchOptions& o, const ProgressFn& progress = {},
                            const LogFn& log = {});

// The fragments a pipeline stage serving `o.selection`'s layers needs: those layers, the
// embedding when they start at layer 0, the head when they end at the last (known once the
// manifest is in: then a second, resumed fetch adds it). `o.out_dir` empty: a cache
// directory, $XDG_CACHE_HOME/ggswarm/HASH-layers-A-B (or ~/.cache/…). Returns the directory.
StatusOr<std::string> FetchStage(FetchOptions o, const ProgressFn& progress = {},
                                 const LogFn& log = {});

}  // namespace ggswarm::net
