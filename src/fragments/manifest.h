// manifest.json of a fragment directory (schema "ggswarm.manifest", version 1):
//   model:     name, architecture, hyperparameters ({arch}.* scalars), file_name, file_size,
//              sha256, gguf_version, alignment, tensor_data_offset, tensor_count
//   header:    file ("gguf_header.dat"), size, sha256 — bytes [0, tensor_data_offset)
//   chunk_size
//   fragments: [{id (SHA-256), file, kind, layer (null outside layers), component, tensor,
//                type, shape, rows [begin, end), shard, size, offset (in the original file)}]
// Bytes of the original not covered by the header or a fragment are zeros (alignment
// padding); non-zero padding is kept as a fragment of kind "gap".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm::fragments {

constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kHeaderFile = "gguf_header.dat";
constexpr const char* kTorrentFile = "model.torrent";  // BitTorrent v2 metadata (net/torrent.h)
constexpr const char* kSchema = "ggswarm.manifest";
constexpr int kSchemaVersion = 1;
constexpr uint64_t kMaxManifestBytes = 256u << 20;  // 1,590 fragments take about 1 MB

struct FragmentEntry {
  std::string id;    // SHA-256 of the fragment's bytes, 64 hex digits
  std::string file;  // name inside the directory
  std::string kind;  // embedding, attention, feed_forward, norm, output, other, gap
  int layer = -1;
  std::string component;
  std::string tensor;  // "" for a gap
  std::string type;    // ggml type name; "" for a gap
  std::vector<uint64_t> shape;
  uint64_t row_begin = 0, row_end = 0;
  // A mixture-of-experts tensor (3-D: ne1 rows per expert) is cut at expert boundaries: the
  // experts [expert_begin, expert_end) this fragment holds whole ("experts" in the JSON;
  // 0, 0 for other tensors).
  uint64_t expert_begin = 0, expert_end = 0;
  int shard = 0;
  uint64_t size = 0;
  uint64_t offset = 0;  // absolute, in the original file
};

struct Manifest {
  int schema_version = kSchemaVersion;
  std::string name, architecture;
  nlohmann::json hyperparameters = nlohmann::json::object();
  std::string file_name;
  uint64_t file_size = 0;
  std::string sha256;
  uint32_t gguf_version = 3;
  uint64_t alignment = 32, data_offset = 0, tensor_count = 0;
  uint64_t header_size = 0;
  std::string header_sha256;
  uint64_t chunk_size = 0;
  std::vector<FragmentEntry> fragments;  // in offset order

  nlohmann::json ToJson() const;
  // Parses and checks a manifest: fields and their types, safe file names, hashes that look
  // like hashes, fragments in order, inside the file and not overlapping.
  static StatusOr<Manifest> FromJson(const std::string& text);
  static StatusOr<Manifest> Load(const std::string& dir);
};

// Checks that the fragments cover exactly the tensors the header describes (name, type,
// shape and byte range), so that an edited manifest cannot reassemble a different model.
Status CheckAgainstHeader(const Manifest& m, const gguf::GgufFile& header);

}  // namespace ggswarm::fragments
