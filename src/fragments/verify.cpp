#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "base/file.h"
#include "base/sha256.h"
#include "fragments/fragments.h"
#include "fragments/selection.h"

namespace ggswarm::fragments {
namespace {

// The SHA-256 of the original file as the fragments rebuild it (header, fragments in file
// order, zeros between them), read through `buf`; an error when a fragment cannot be read
// (the fragment checks name it). `on_chunk` sees the size of every piece hashed.
StatusOr<std::string> WholeFileSha256(const std::string& dir, const Manifest& m,
                                      const std::string& header, std::vector<uint8_t>& buf,
                                      const std::function<void(size_t)>& on_chunk) {
  Sha256 h;
  h.Update({reinterpret_cast<const uint8_t*>(header.data()), header.size()});
  uint64_t at = header.size();
  auto zeros_to = [&](uint64_t end) {
    std::fill(buf.begin(), buf.end(), 0);
    while (at < end) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
      h.Update({buf.data(), n});
      at += n;
    }
  };
  for (const FragmentEntry& f : m.fragments) {
    if (f.offset < at) return Status::Corruption("fragments overlap at byte " + std::to_string(at));
    zeros_to(f.offset);
    auto in = InputFile::Open(dir + "/" + f.file);
    if (!in.ok()) return in.status();
    if (in->size() != f.size) return Status::Corruption(f.file + " has the wrong size");
    for (uint64_t done = 0; done < f.size;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), f.size - done));
      GGSWARM_RETURN_IF_ERROR(in->ReadAt(done, {buf.data(), n}));
      h.Update({buf.data(), n});
      if (on_chunk) on_chunk(n);
      done += n;
    }
    at += f.size;
  }
  if (at > m.file_size) return Status::Corruption("fragments run past the file's size");
  zeros_to(m.file_size);
  return ToHex(h.Finish());
}

}  // namespace

StatusOr<gguf::GgufFile> LoadHeader(const std::string& dir, const Manifest& m,
                                    std::string* bytes_out) {
  const std::string path = dir + "/" + kHeaderFile;
  auto bytes = ReadSmallFile(path, m.header_size);
  if (!bytes.ok()) {
    if (bytes.status().code() == Status::Code::kNotFound) {
      return Status::NotFound(std::string(kHeaderFile) + " is missing");
    }
    return Status::Corruption(std::string(kHeaderFile) + ": " + bytes.status().message());
  }
  std::span<const uint8_t> b(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
  if (b.size() != m.header_size) {
    return Status::Corruption(std::string(kHeaderFile) + " is " + std::to_string(b.size()) +
                              " bytes, the manifest says " + std::to_string(m.header_size));
  }
  if (ToHex(Sha256Of(b)) != m.header_sha256) {
    return Status::Corruption(std::string(kHeaderFile) + ": SHA-256 mismatch");
  }
  gguf::ParseOptions opts;
  opts.full_file_size = m.file_size;
  auto header = gguf::GgufFile::Parse(b, opts);
  if (!header.ok()) {
    return Status::Corruption(std::string(kHeaderFile) + ": " + header.status().message());
  }
  GGSWARM_RETURN_IF_ERROR(CheckAgainstHeader(m, *header));
  if (bytes_out) *bytes_out = std::move(bytes.value());
  return header;
}

StatusOr<VerifyReport> VerifyDirectory(const std::string& dir, int threads,
                                       const ProgressFn& progress) {
  auto m = Manifest::Load(dir);
  if (!m.ok()) return m.status();
  VerifyReport r;
  r.manifest = std::move(m.value());
  const Manifest& man = r.manifest;

  std::string header_bytes;
  auto header = LoadHeader(dir, man, &header_bytes);
  if (!header.ok()) r.problems.push_back({kHeaderFile, header.status().message()});
  auto selection = LoadSelection(dir);
  std::vector<bool> skip(man.fragments.size(), false);
  if (!selection.ok()) {
    r.problems.push_back({kSelectionFile, selection.status().message()});
  } else if (selection->has_value()) {
    const Selection& sel = **selection;
    r.selection = sel.Describe();
    if (Status st = sel.Check(man); !st.ok()) r.problems.push_back({kSelectionFile, st.message()});
    for (size_t i = 0; i < man.fragments.size(); ++i) {
      const FragmentEntry& f = man.fragments[i];
      if (!sel.Wants(f, man) && !PathExists(dir + "/" + f.file)) {
        skip[i] = true;
        r.not_selected.push_back(f.file);
        r.not_selected_bytes += f.size;
      }
    }
  }

  uint64_t total = 0;
  for (size_t i = 0; i < man.fragments.size(); ++i) {
    if (!skip[i]) total += man.fragments[i].size;
  }
  // A complete copy is also checked as a whole, against the manifest's SHA-256 of the original
  // file (what reassemble checks): one thread hashes it front to back beside the others.
  const bool whole = header.ok() && r.not_selected.empty();
  if (whole) total *= 2;
  std::atomic<uint64_t> done{0};
  std::atomic<size_t> next{0}, files{0};
  std::mutex mu;
  auto problem = [&](const std::string& file, std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    r.problems.push_back({file, std::move(what)});
  };
  const int n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> workers;
  StatusOr<std::string> whole_sha = std::string();
  if (whole) {
    workers.emplace_back([&] {
      std::vector<uint8_t> buf(kIoChunk);
      whole_sha = WholeFileSha256(dir, man, header_bytes, buf, [&](size_t k) {
        const uint64_t now = done.fetch_add(k) + k;
        if (progress) progress(now, total);
      });
    });
  }
  for (int w = 0; w < n; ++w) {
    workers.emplace_back([&] {
      std::vector<uint8_t> buf(kIoChunk);
      for (size_t i; (i = next.fetch_add(1)) < man.fragments.size();) {
        const FragmentEntry& f = man.fragments[i];
        if (skip[i]) continue;
        const Status st = CheckFragmentFile(dir, f, buf, [&](size_t k) {
          const uint64_t now = done.fetch_add(k) + k;
          if (progress) progress(now, total);
        });
        if (!st.ok()) problem(f.file, st.message());
        files++;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  r.files_checked = files;
  r.bytes_checked = whole ? done / 2 : done.load();
  // Sorted by file name, whatever order the threads finished in.
  std::stable_sort(r.problems.begin(), r.problems.end(),
                   [](const VerifyProblem& a, const VerifyProblem& b) { return a.file < b.file; });
  // Every fragment right but the whole wrong: the manifest's own SHA-256 lies.
  if (whole && r.problems.empty()) {
    r.whole_file_checked = true;
    if (!whole_sha.ok()) {
      r.problems.push_back({kManifestFile, whole_sha.status().message()});
    } else if (*whole_sha != man.sha256) {
      r.problems.push_back({kManifestFile, "the fragments rebuild a file whose SHA-256 is " +
                                               *whole_sha + ", not the manifest's " + man.sha256});
    }
  }
  return r;
}

namespace {

Status SizeMismatch(uint64_t size, const FragmentEntry& f) {
  return Status::Corruption("size " + std::to_string(size) + " bytes, expected " +
                            std::to_string(f.size));
}

const char* kShaMismatch = "SHA-256 mismatch (corrupt)";

}  // namespace

Status CheckFragmentFile(const std::string& dir, const FragmentEntry& f, std::span<uint8_t> buf,
                         const std::function<void(size_t)>& progress) {
  auto in = InputFile::Open(dir + "/" + f.file);
  if (!in.ok()) {
    if (in.status().code() == Status::Code::kNotFound) return Status::NotFound("missing");
    return in.status();
  }
  if (in->size() != f.size) return SizeMismatch(in->size(), f);
  auto sha = Sha256HexOfFile(*in, buf, progress);
  if (!sha.ok()) return sha.status();
  if (*sha != f.id) return Status::Corruption(kShaMismatch);
  return Status::Ok();
}

StatusOr<MappedFile> MapCheckedFragment(const std::string& dir, const FragmentEntry& f) {
  const std::string context = "fragment " + f.file;
  auto map = MappedFile::Open(dir + "/" + f.file);
  if (!map.ok()) {
    if (map.status().code() == Status::Code::kNotFound)
      return Status::NotFound(context + ": missing");
    return map.status();
  }
  if (map->size() != f.size) return SizeMismatch(map->size(), f).WithContext(context);
  if (ToHex(Sha256Of(map->bytes())) != f.id)
    return Status::Corruption(context + ": " + kShaMismatch);
  return map;
}

}  // namespace ggswarm::fragments
