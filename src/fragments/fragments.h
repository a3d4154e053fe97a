// Fragment directories: cut a GGUF file into content-addressed fragments, check them, and
// put the original back together byte for byte.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/progress.h"
#include "base/status.h"
#include "fragments/manifest.h"

namespace ggswarm::fragments {

constexpr uint64_t kDefaultChunkSize = 10u << 20;  // 10 MiB, as the prototype's fragmenter

struct FragmentOptions {
  uint64_t chunk_size = kDefaultChunkSize;
  std::string name;    // model name in file names; default: the GGUF file's stem
  bool force = false;  // write into a non-empty directory
  int threads = 0;     // 0: all cores
};

struct FragmentReport {
  Manifest manifest;
  uint64_t bytes = 0;
};

StatusOr<FragmentReport> FragmentModel(const std::string& gguf_path, const std::string& out_dir,
                                       const FragmentOptions& opts,
                                       const ProgressFn& progress = {});

struct VerifyProblem {
  std::string file;
  std::string what;  // "missing", "size ...", "SHA-256 mismatch", or a manifest problem
};

struct VerifyReport {
  Manifest manifest;
  size_t files_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<VerifyProblem> problems;
  bool whole_file_checked = false;  // the original file's SHA-256 too (complete copies)
  // A partial copy (selection.json): what it holds on purpose, and the fragments outside
  // that selection which are absent, as they should be.
  std::string selection = "all";
  std::vector<std::string> not_selected;
  uint64_t not_selected_bytes = 0;
  bool ok() const { return problems.empty(); }
};

// Checks the manifest (against the header) and every listed file: present, size, SHA-256;
// and, in a complete copy, that they rebuild the original file's SHA-256. In a partial copy, a
// fragment outside its selection.json may be absent; if present it is checked like the rest.
// Returns an error only when there is no readable manifest at all.
StatusOr<VerifyReport> VerifyDirectory(const std::string& dir, int threads = 0,
                                       const ProgressFn& progress = {});

struct ReassembleReport {
  uint64_t bytes = 0;
  std::string sha256;
};

// Rebuilds the original GGUF at `out_path`, checking every fragment and the whole file's
// SHA-256; the file appears only when it is complete and correct.
StatusOr<ReassembleReport> Reassemble(const std::string& dir, const std::string& out_path,
                                      bool overwrite, const ProgressFn& progress = {});

// Reads and checks gguf_header.dat against the manifest (size, hash, tensor layout); its
// bytes go to `*bytes_out` when given.
StatusOr<gguf::GgufFile> LoadHeader(const std::string& dir, const Manifest& m,
                                    std::string* bytes_out = nullptr);

// One fragment's file against its manifest entry: present, f.size bytes, SHA-256 f.id — the
// one check that verify, reassemble, FragmentSource and fetch share. The message says what is
// wrong ("missing" (NotFound), "size N bytes, expected M", "SHA-256 mismatch (corrupt)"),
// without the file's name; `progress` hears of the bytes hashed as they go.
Status CheckFragmentFile(const std::string& dir, const FragmentEntry& f, std::span<uint8_t> buf,
                         const std::function<void(size_t)>& progress = {});
// The fragment's file mapped, after the same check on the mapped bytes; errors read
// "fragment FILE: what".
StatusOr<MappedFile> MapCheckedFragment(const std::string& dir, const FragmentEntry& f);

}  // namespace ggswarm::fragments
