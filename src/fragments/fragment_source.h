// A TensorSource over a fragment directory: the header and manifest are read and checked
// when it opens; each fragment is mapped the first time a tensor needs it, and its size and
// SHA-256 are checked before any of its bytes are used. Row-shards are used where they lie.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/file.h"
#include "fragments/manifest.h"
#include "gguf/tensor_source.h"

namespace ggswarm::fragments {

class FragmentSource : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<FragmentSource>> Open(const std::string& dir);
  const gguf::GgufFile& header() const override { return header_; }
  StatusOr<TensorView> Get(std::string_view name) override;
  std::string path() const override { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  // Bytes of fragments mapped and checked so far.
  uint64_t bytes_mapped() const;

 private:
  std::string dir_;
  Manifest manifest_;
  gguf::GgufFile header_;
  std::map<std::string, std::vector<size_t>, std::less<>> by_tensor_;  // -> fragment indices
  mutable std::mutex mu_;
  std::map<size_t, std::unique_ptr<MappedFile>> mapped_;  // fragment index -> checked map
  uint64_t bytes_mapped_ = 0;
};

// A GGUF file or a fragment directory, whichever `path` is.
StatusOr<std::unique_ptr<TensorSource>> OpenModel(const std::string& path);
// Of the model at `path` (a fragment directory or a GGUF file, as OpenModel decides): the
// original file's SHA-256 (the manifest's, or the file hashed), and its bytes before the
// tensor data (gguf_header.dat, or the file's first `data_offset` bytes).
StatusOr<std::string> OriginalSha256(const std::string& path);
StatusOr<std::string> OriginalHeader(const std::string& path, uint64_t data_offset);

}  // namespace ggswarm::fragments
