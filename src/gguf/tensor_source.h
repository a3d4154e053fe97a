// The seam between the engine and where weights live. The model asks for a tensor by name
// and gets a view of its bytes: the type and shape from the GGUF header, and one or more
// row-shards, each a pointer to whole rows in memory that the source keeps mapped. A GGUF
// file (one mapping) and a fragment directory (one mapping per fragment, each checked
// against its SHA-256 before first use) are two sources behind this interface.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm {

struct TensorShard {
  const uint8_t* data;  // rows [row_begin, row_end), each row_bytes long
  uint64_t row_begin, row_end;
};

struct TensorView {
  const gguf::TensorInfo* info = nullptr;  // name, shape (ne0 first), type
  std::vector<TensorShard> shards;         // in row order, together covering every row
  uint64_t row_bytes = 0;

  GgmlType type() const { return info->type; }
  uint64_t cols() const { return info->shape[0]; }
  uint64_t rows() const { return info->rows(); }
  const uint8_t* Row(uint64_t r) const {
    for (const TensorShard& s : shards)
      if (r < s.row_end) return s.data + (r - s.row_begin) * row_bytes;
    return nullptr;
  }
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // Metadata and tensor infos; available before any weight is touched.
  virtual const gguf::GgufFile& header() const = 0;
  // The tensor's bytes, mapped (and checked) on first use. Thread-safe. The view stays
  // valid as long as the source.
  virtual StatusOr<TensorView> Get(std::string_view name) = 0;
  // A GGUF file path or a fragment directory, for messages.
  virtual std::string path() const = 0;
};

// Weights straight from a mapped GGUF file.
class GgufSource : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<GgufSource>> Open(const std::string& path);
  const gguf::GgufFile& header() const override { return file_; }
  StatusOr<TensorView> Get(std::string_view name) override;
  std::string path() const override { return path_; }

 private:
  gguf::GgufFile file_;
  std::string path_;
};

}  // namespace ggswarm
