// libFuzzer entry point for the GGUF reader (whole files and header-only parses), the
// vocabulary and hyper-parameter readers on what it accepts (with the tokenizer run over the
// input bytes as text), and the manifest parser. Build with -DGGSWARM_FUZZ=ON and clang;
// tests/fuzz_replay_test.cpp drives the same entry point with deterministic mutations in every
// ordinary build.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fragments/manifest.h"
#include "gguf/ggml_type.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

// What an accepted file promises every caller, computed again here in 128-bit arithmetic so
// that a wrapped product in the reader cannot agree with it by accident. Traps when broken.
void CheckInvariants(const ggswarm::gguf::GgufFile& f, uint64_t file_size) {
  using u128 = unsigned __int128;
  if (f.data_offset > file_size || f.data_offset % f.alignment != 0) __builtin_trap();
  u128 prev_end = 0;
  for (const auto& t : f.tensors) {
    u128 elements = 1;
    for (uint64_t d : t.shape) elements *= d;
    const ggswarm::TypeTraits& tr = ggswarm::Traits(t.type);
    if (elements != t.n_elements || t.shape[0] % tr.block_size != 0) __builtin_trap();
    const u128 bytes = elements / tr.block_size * tr.type_size;
    if (bytes != t.size) __builtin_trap();  // the size did not wrap
    const u128 begin = u128{f.data_offset} + t.offset;
    if (begin < prev_end || begin + bytes > file_size) __builtin_trap();  // inside, in order
    prev_end = begin + bytes;
  }
}

// Written back (v3, llama.cpp's layout) and read again, an accepted file keeps every key,
// value and tensor, and writing that gives the same bytes: parse → write → parse is a fixpoint.
void CheckRoundTrip(const ggswarm::gguf::GgufFile& f) {
  using ggswarm::gguf::GgufFile;
  const auto w = ggswarm::gguf::WriterFor(f);
  const std::string h = w.SerializeHeader();
  ggswarm::gguf::ParseOptions o;
  o.full_file_size = w.FileSize();
  auto again = GgufFile::Parse({reinterpret_cast<const uint8_t*>(h.data()), h.size()}, o);
  if (!again.ok()) __builtin_trap();
  if (again->metadata.size() != f.metadata.size() || again->tensors.size() != f.tensors.size())
    __builtin_trap();
  for (size_t i = 0; i < f.metadata.size(); ++i)
    if (again->metadata[i].key != f.metadata[i].key) __builtin_trap();  // values: the bytes below
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    const auto &a = again->tensors[i], &b = f.tensors[i];
    if (a.name != b.name || a.type != b.type || a.shape != b.shape || a.size != b.size)
      __builtin_trap();
  }
  if (ggswarm::gguf::WriterFor(*again).SerializeHeader() != h) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto f = ggswarm::gguf::GgufFile::Parse(bytes);
  if (f.ok()) {
    CheckInvariants(*f, size);
    CheckRoundTrip(*f);
    // Touch everything a caller might: metadata renderings and tensor extents.
    for (const auto& kv : f->metadata) (void)kv.value.ToString(4);
    for (const auto& t : f->tensors) (void)(t.offset + t.size <= f->file_size);
    (void)ggswarm::model::LlamaConfig::FromGguf(*f);
    auto tok = ggswarm::tokenizer::Tokenizer::FromGguf(*f);
    if (tok.ok()) {
      const std::string text(reinterpret_cast<const char*>(data), std::min<size_t>(size, 256));
      const auto ids = tok->Encode(text, true, true);
      (void)tok->Decode(ids, true, true);
    }
  }
  if (size > 0) {
    // The tokenizer's Unicode handling on arbitrary bytes.
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)ggswarm::tokenizer::SanitizeUtf8(text);
  }
  ggswarm::gguf::ParseOptions header_only;
  header_only.full_file_size = size + (size > 0 ? data[0] : 0) * 4096;
  auto h = ggswarm::gguf::GgufFile::Parse(bytes, header_only);
  if (h.ok()) {
    CheckInvariants(*h, *header_only.full_file_size);
    (void)ggswarm::model::LlamaConfig::FromGguf(*h);
    auto tok = ggswarm::tokenizer::Tokenizer::FromGguf(*h);
    if (tok.ok()) (void)tok->Encode("Hello <s> wörld 123 \xF0\x9F\xA6", true, true);
  }
  (void)ggswarm::fragments::Manifest::FromJson(
      std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
