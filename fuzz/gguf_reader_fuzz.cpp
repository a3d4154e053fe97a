// libFuzzer entry point for the GGUF reader (whole files and header-only parses) and the
// manifest parser. Build with -DGGSWARM_FUZZ=ON and clang; tests/fuzz_replay_test.cpp drives
// the same entry point with deterministic mutations in every ordinary build.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fragments/manifest.h"
#include "gguf/gguf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto f = ggswarm::gguf::GgufFile::Parse(bytes);
  if (f.ok()) {
    // Touch everything a caller might: metadata renderings and tensor extents.
    for (const auto& kv : f->metadata) (void)kv.value.ToString(4);
    for (const auto& t : f->tensors) (void)(t.offset + t.size <= f->file_size);
  }
  ggswarm::gguf::ParseOptions header_only;
  header_only.full_file_size = size + (size > 0 ? data[0] : 0) * 4096;
  (void)ggswarm::gguf::GgufFile::Parse(bytes, header_only);
  (void)ggswarm::fragments::Manifest::FromJson(
      std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
