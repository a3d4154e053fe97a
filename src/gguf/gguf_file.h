// A parsed, validated GGUF file. Parsing checks everything before anything is used (magic,
// version, every count and length against the bytes present, unique keys and tensor names,
// dimensions, types, block-aligned rows, aligned and ordered offsets inside the file) and
// reports the first problem with its byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/file.h"
#include "base/status.h"
#include "gguf/ggml_type.h"
#include "gguf/value.h"

namespace ggswarm::gguf {

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // ne[0] (fastest, a row) first, as GGUF stores it
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of tensor data
  uint64_t size = 0;    // bytes
  uint64_t n_elements = 0;

  uint64_t rows() const { return shape.empty() ? 0 : n_elements / shape[0]; }
  uint64_t row_bytes() const { return rows() ? size / rows() : 0; }
};

struct ParseOptions {
  // Set when the bytes are only the header (everything before tensor data) of a file of this
  // many bytes, as in a fragment directory's gguf_header.dat.
  std::optional<uint64_t> full_file_size;
};

class GgufFile {
 public:
  static StatusOr<GgufFile> Parse(std::span<const uint8_t> bytes, const ParseOptions& opts = {});
  // Maps `path` and parses it; the map lives as long as the GgufFile (and its copies).
  static StatusOr<GgufFile> Open(const std::string& path);

  uint32_t version = 3;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;  // file offset of tensor data (= size of the header)
  uint64_t file_size = 0;
  std::vector<KeyValue> metadata;
  std::vector<TensorInfo> tensors;

  const Value* Find(std::string_view key) const;
  const TensorInfo* FindTensor(std::string_view name) const;
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;
  std::string Architecture() const;  // general.architecture, or "" when absent
  uint64_t ParameterCount() const;

  bool has_data() const { return map_ != nullptr; }
  // The bytes of a tensor in the mapped file (empty for a header-only parse).
  std::span<const uint8_t> TensorBytes(const TensorInfo& t) const;
  std::span<const uint8_t> FileBytes() const;

 private:
  std::shared_ptr<MappedFile> map_;
};

}  // namespace ggswarm::gguf
