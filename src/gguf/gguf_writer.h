// Writes GGUF v3 files: metadata in the order given, tensors laid out back to back at aligned
// offsets, exactly as llama.cpp's writer does, so a file read and written back is identical.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm::gguf {

class GgufWriter {
 public:
  // Sets or replaces a key (keeping its position); general.alignment also sets the alignment.
  void Set(const std::string& key, Value v);
  void AddTensor(const std::string& name, GgmlType type, std::vector<uint64_t> shape);

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  uint64_t alignment() const { return alignment_; }
  std::string SerializeHeader() const;  // magic … tensor infos, padded to the alignment
  uint64_t FileSize() const;

  // Writes the file to `path` (via a temporary name). `fill(i, out)` writes the bytes of
  // tensor i, exactly tensors()[i].size of them.
  using TensorFiller = std::function<Status(size_t index, OutputFile& out)>;
  Status Write(const std::string& path, bool overwrite, const TensorFiller& fill) const;

 private:
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_size_ = 0;
};

// A writer holding the metadata and tensor layout of `f`.
GgufWriter WriterFor(const GgufFile& f);
// Writes `f` (which must be mapped) back out as GGUF v3.
Status WriteCopy(const GgufFile& f, const std::string& path, bool overwrite);

}  // namespace ggswarm::gguf
