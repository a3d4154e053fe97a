// A peer's store: many models, each fragment kept once however many models share it.
//   STORE/blobs/<sha256>                  a fragment's bytes, named by their SHA-256
//   STORE/models/<name>-<infohash16>/     a fragment directory: manifest.json,
//       gguf_header.dat, model.torrent, [selection.json], and each fragment as a hard link
//       to its blob. `ggswarm run` and `verify` take it like any fragment directory.
#pragma once

#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "net/torrent.h"

namespace ggswarm::net {

struct StoreAddReport {
  std::string model_dir;
  TorrentSummary torrent;
  size_t fragments = 0;
  size_t new_blobs = 0;  // fragments the store did not hold yet
  uint64_t new_bytes = 0;
  uint64_t shared_bytes = 0;  // fragments already held for another model: not stored again
};

class Store {
 public:
  static StatusOr<Store> Open(const std::string& root, bool create);
  const std::string& root() const { return root_; }

  // Copies a verified fragment directory (full, or a partial copy with its model.torrent)
  // into the store. The source is only read.
  StatusOr<StoreAddReport> Add(const std::string& fragment_dir, const ProgressFn& progress = {});
  // The store's model directories, each with a model.torrent.
  std::vector<std::string> ModelDirs() const;

 private:
  std::string root_;
};

}  // namespace ggswarm::net
