#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "base/file.h"
#include "base/sha256.h"
#include "base/text.h"
#include "base/thread_pool.h"
#include "fragments/fragments.h"
#include "fragments/naming.h"
#include "fragments/selection.h"
#include "gguf/ggml_type.h"

namespace ggswarm::fragments {
namespace {

bool DirectoryIsEmpty(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return true;
  bool empty = true;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") empty = false;
  }
  ::closedir(d);
  return empty;
}

std::string Stem(const std::string& path) {
  std::string base = std::filesystem::path(path).filename().string();
  if (base.size() > 5 && base.substr(base.size() - 5) == ".gguf") base.resize(base.size() - 5);
  return base;
}

// The fragments of one tensor: shards of whole rows, each at most `chunk` bytes (a single
// row larger than the chunk is a shard of its own).
void PlanTensor(const gguf::GgufFile& f, const gguf::TensorInfo& t, uint64_t chunk,
                const std::string& model, std::vector<FragmentEntry>* out) {
  const TensorRole role = RoleOf(t.name);
  const uint64_t rows = t.rows(), row_bytes = t.row_bytes();
  uint64_t per_shard = std::max<uint64_t>(1, chunk / row_bytes);
  // A stack of experts (3-D) is cut between experts: whole experts per fragment, at least
  // one however large, so that a fetch or a map of an expert is one fragment.
  const uint64_t per_expert = t.shape.size() == 3 && t.shape[2] > 1 ? t.shape[1] : 0;
  if (per_expert) per_shard = std::max<uint64_t>(1, per_shard / per_expert) * per_expert;
  int shard = 0;
  for (uint64_t r = 0; r < rows; r += per_shard, ++shard) {
    FragmentEntry e;
    e.kind = role.kind;
    e.layer = role.layer;
    e.component = role.component;
    e.tensor = t.name;
    e.type = TypeName(t.type);
    e.shape = t.shape;
    e.row_begin = r;
    e.row_end = std::min(rows, r + per_shard);
    if (per_expert) {
      e.expert_begin = e.row_begin / per_expert;
      e.expert_end = e.row_end / per_expert;
    }
    e.shard = shard;
    e.size = (e.row_end - e.row_begin) * row_bytes;
    e.offset = f.data_offset + t.offset + r * row_bytes;
    e.file = model;  // completed with the hash once it is known
    out->push_back(std::move(e));
  }
}

// Hashes bytes [offset, offset+size) of `in` in chunks, calling `sink` with each chunk.
template <class Sink>
Status StreamRange(const InputFile& in, uint64_t offset, uint64_t size, std::vector<uint8_t>& buf,
                   Sha256& h, Sink&& sink) {
  for (uint64_t done = 0; done < size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    GGSWARM_RETURN_IF_ERROR(in.ReadAt(offset + done, {buf.data(), n}));
    h.Update({buf.data(), n});
    GGSWARM_RETURN_IF_ERROR(sink(std::span<const uint8_t>(buf.data(), n)));
    done += n;
  }
  return Status::Ok();
}

// `s` with bytes outside printable ASCII shown as \xNN, for messages about bad names.
std::string Printable(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      r += static_cast<char>(c);
    } else {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      r += b;
    }
  }
  return r;
}

// The strings of the file that manifest.json repeats must be UTF-8 (JSON cannot hold other
// bytes and still give them back), so a file with others is refused before anything is
// written.
Status CheckManifestText(const gguf::GgufFile& f, const std::string& file_name) {
  for (const gguf::TensorInfo& t : f.tensors) {
    if (!IsValidUtf8(t.name))
      return Status::Unsupported("tensor name \"" + Printable(t.name) +
                                 "\" is not valid UTF-8, which manifest.json cannot hold");
  }
  for (const gguf::KeyValue& kv : f.metadata) {
    if (!IsValidUtf8(kv.key))
      return Status::Unsupported("metadata key \"" + Printable(kv.key) +
                                 "\" is not valid UTF-8, which manifest.json cannot hold");
  }
  if (!IsValidUtf8(f.Architecture()))
    return Status::Unsupported("general.architecture is not valid UTF-8");
  if (!IsValidUtf8(file_name))
    return Status::Unsupported("the file name \"" + Printable(file_name) +
                               "\" is not valid UTF-8, which manifest.json cannot hold");
  return Status::Ok();
}

// A fragment directory is written into "<out>.partial-<pid>" beside its final place and
// moved there only when complete, so a failure or a kill never leaves a folder that looks
// like a model. Destroyed before Publish(), it removes what it wrote.
class StagingDirectory {
 public:
  explicit StagingDirectory(const std::string& out_dir)
      : out_(out_dir), path_(out_dir + ".partial-" + std::to_string(::getpid())) {}
  ~StagingDirectory() {
    std::error_code ec;
    if (!published_) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

  Status Create() {
    RemoveStale();
    std::error_code ec;
    std::filesystem::create_directories(path_, ec);
    if (ec) return Status::IOError("cannot create " + path_ + ": " + ec.message());
    return Status::Ok();
  }

  // Moves the finished directory to its place. Into a directory that is not empty (--force),
  // the files of the model that was there go (those its manifest lists, its header,
  // manifest, selection and torrent) while other files stay; manifest.json comes last.
  Status Publish() {
    if (!IsDirectory(out_) || DirectoryIsEmpty(out_)) {
      if (::rename(path_.c_str(), out_.c_str()) != 0)
        return Status::IOError("cannot rename " + path_ + " to " + out_ + ": " +
                               std::strerror(errno));
      published_ = true;
      return Status::Ok();
    }
    std::set<std::string> old = {kManifestFile, kHeaderFile, kSelectionFile, kTorrentFile};
    if (auto m = Manifest::Load(out_); m.ok())
      for (const FragmentEntry& f : m->fragments) old.insert(f.file);
    std::set<std::string> fresh;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(path_, ec))
      fresh.insert(e.path().filename().string());
    if (ec) return Status::IOError("cannot list " + path_ + ": " + ec.message());
    ::unlink((out_ + "/" + kManifestFile).c_str());  // the folder stops being the old model
    for (const std::string& name : old) {
      const std::string p = out_ + "/" + name;
      struct stat st {};
      if (!fresh.count(name) && ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode))
        ::unlink(p.c_str());
    }
    auto move = [&](const std::string& name) -> Status {
      const std::string from = path_ + "/" + name, to = out_ + "/" + name;
      if (::rename(from.c_str(), to.c_str()) != 0)
        return Status::IOError("cannot move " + from + " to " + to + ": " + std::strerror(errno));
      return Status::Ok();
    };
    for (const std::string& name : fresh)
      if (name != kManifestFile) GGSWARM_RETURN_IF_ERROR(move(name));
    GGSWARM_RETURN_IF_ERROR(move(kManifestFile));
    published_ = true;
    std::filesystem::remove_all(path_, ec);
    return Status::Ok();
  }

 private:
  // Staging folders of this output left by processes that were killed: flat folders only.
  void RemoveStale() {
    for (const std::string& stale : StalePartials(out_)) {
      std::error_code ec;
      if (!std::filesystem::is_directory(stale, ec)) continue;
      bool flat = true;
      for (const auto& f : std::filesystem::directory_iterator(stale, ec))
        flat = flat && f.is_regular_file();
      if (flat) std::filesystem::remove_all(stale, ec);
    }
  }

  std::string out_, path_;
  bool published_ = false;
};

bool AllZero(std::span<const uint8_t> b) {
  for (uint8_t x : b) {
    if (x) return false;
  }
  return true;
}

// The manifest of `f` before any byte is written: the model's description, and the
// fragments in file order (tensor shards of whole rows, plus any non-zero bytes between
// tensors as "gap" pieces), their hashes still to be filled in.
StatusOr<Manifest> PlanFragments(const gguf::GgufFile& f, const InputFile& in,
                                 const std::string& gguf_path, const FragmentOptions& opts) {
  Manifest m;
  m.name = SanitizeName(opts.name.empty() ? Stem(gguf_path) : opts.name);
  m.architecture = f.Architecture();
  for (const gguf::KeyValue& kv : f.metadata) {
    const std::string prefix = m.architecture + ".";
    if (m.architecture.empty() || kv.key.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = kv.key.substr(prefix.size());
    if (kv.value.type == gguf::ValueType::FLOAT32 || kv.value.type == gguf::ValueType::FLOAT64) {
      m.hyperparameters[key] = kv.value.f;
    } else if (kv.value.type == gguf::ValueType::BOOL) {
      m.hyperparameters[key] = kv.value.u != 0;
    } else if (auto x = kv.value.AsInt()) {
      m.hyperparameters[key] = *x;
    }
  }
  m.file_name = std::filesystem::path(gguf_path).filename().string();
  m.file_size = f.file_size;
  m.gguf_version = f.version;
  m.alignment = f.alignment;
  m.data_offset = f.data_offset;
  m.tensor_count = f.tensors.size();
  m.header_size = f.data_offset;
  m.chunk_size = opts.chunk_size;

  // Plan: tensor shards, plus any non-zero bytes between them as "gap" pieces.
  std::vector<uint8_t> scan(kIoChunk);
  auto add_gaps = [&](uint64_t from, uint64_t to) -> Status {
    for (uint64_t pos = from; pos < to;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(scan.size(), to - pos));
      GGSWARM_RETURN_IF_ERROR(in.ReadAt(pos, {scan.data(), n}));
      if (!AllZero({scan.data(), n})) {
        FragmentEntry g;
        g.kind = "gap";
        g.component = "gap" + std::to_string(pos);
        g.size = n;
        g.offset = pos;
        g.file = m.name;
        m.fragments.push_back(std::move(g));
      }
      pos += n;
    }
    return Status::Ok();
  };
  uint64_t pos = f.data_offset;
  for (const gguf::TensorInfo& t : f.tensors) {
    GGSWARM_RETURN_IF_ERROR(add_gaps(pos, f.data_offset + t.offset));
    PlanTensor(f, t, opts.chunk_size, m.name, &m.fragments);
    pos = f.data_offset + t.offset + t.size;
  }
  GGSWARM_RETURN_IF_ERROR(add_gaps(pos, f.file_size));
  return m;
}

}  // namespace

StatusOr<FragmentReport> FragmentModel(const std::string& gguf_path, const std::string& out_dir,
                                       const FragmentOptions& opts, const ProgressFn& progress) {
  if (opts.chunk_size == 0) return Status::InvalidArgument("chunk size must be at least 1 byte");
  auto parsed = gguf::GgufFile::Open(gguf_path);
  if (!parsed.ok()) return parsed.status();
  const gguf::GgufFile& f = *parsed;
  auto in_or = InputFile::Open(gguf_path);
  if (!in_or.ok()) return in_or.status();
  const InputFile& in = *in_or;

  std::string out = out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (PathExists(out) && !IsDirectory(out)) {
    return Status::Exists(out + " exists and is not a directory");
  }
  if (IsDirectory(out) && !DirectoryIsEmpty(out) && !opts.force) {
    return Status::Exists(out + " is not empty (refusing to write into it; pass --force)");
  }
  GGSWARM_RETURN_IF_ERROR(
      CheckManifestText(f, std::filesystem::path(gguf_path).filename().string()));
  StagingDirectory staging(out);
  GGSWARM_RETURN_IF_ERROR(staging.Create());
  const std::string& stage = staging.path();

  auto planned = PlanFragments(f, in, gguf_path, opts);
  if (!planned.ok()) return planned.status();
  Manifest& m = *planned;

  // The header, hashed and written first.
  const auto header = f.FileBytes().subspan(0, f.data_offset);
  m.header_sha256 = ToHex(Sha256Of(header));
  {
    auto hf = OutputFile::Create(stage + "/" + kHeaderFile, true);
    if (!hf.ok()) return hf.status();
    GGSWARM_RETURN_IF_ERROR(hf->Write(header));
    GGSWARM_RETURN_IF_ERROR(hf->Commit());
  }

  // Work: one thread hashes the whole file front to back while a thread pool (all cores)
  // hashes and writes fragments, so both passes over the bytes run at once.
  const uint64_t total = 2 * f.file_size;
  std::atomic<uint64_t> done{0};
  auto report = [&](uint64_t n) {
    const uint64_t now = done.fetch_add(n) + n;
    if (progress) progress(now, total);
  };
  std::mutex err_mu;
  Status first_error;
  std::atomic<bool> failed{false};
  auto fail = [&](Status st) {
    std::lock_guard<std::mutex> lock(err_mu);
    if (first_error.ok()) first_error = std::move(st);
    failed = true;
  };

  std::thread whole([&] {
    std::vector<uint8_t> buf(kIoChunk);
    Sha256 h;
    Status st = StreamRange(in, 0, f.file_size, buf, h, [&](std::span<const uint8_t> b) {
      report(b.size());
      return failed ? Status::IOError("stopped") : Status::Ok();
    });
    if (!st.ok()) return fail(st);
    m.sha256 = ToHex(h.Finish());
  });

  ThreadPool pool(opts.threads);  // 0: one thread per core
  std::vector<std::vector<uint8_t>> bufs(pool.size());
  pool.Run(static_cast<int64_t>(m.fragments.size()), [&](int64_t begin, int64_t end, int w) {
    std::vector<uint8_t>& buf = bufs[w];
    if (buf.empty()) buf.resize(kIoChunk);
    for (int64_t i = begin; i < end && !failed; ++i) {
      FragmentEntry& e = m.fragments[i];
      const std::string temp = stage + "/.fragment-" + std::to_string(w) + ".partial";
      auto file = OutputFile::Create(temp, true);
      if (!file.ok()) return fail(file.status());
      Sha256 h;
      Status st = StreamRange(in, e.offset, e.size, buf, h, [&](std::span<const uint8_t> b) {
        report(b.size());
        return file->Write(b);
      });
      if (!st.ok()) return fail(st);
      if (!(st = file->Commit()).ok()) return fail(st);
      e.id = ToHex(h.Finish());
      e.file = FragmentFileName(e.file, {e.kind, e.layer, e.component}, e.shard, e.id);
      // Two fragments with the same bytes and role share one file: content addressing.
      if (::rename(temp.c_str(), (stage + "/" + e.file).c_str()) != 0) {
        return fail(Status::IOError("cannot rename " + temp + " to " + e.file));
      }
    }
  });
  whole.join();
  if (failed) return first_error;

  const std::string text = JsonText(m.ToJson(), 1) + "\n";  // its strings checked above
  auto mf = OutputFile::Create(stage + "/" + kManifestFile, true);
  if (!mf.ok()) return mf.status();
  GGSWARM_RETURN_IF_ERROR(mf->Write({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  GGSWARM_RETURN_IF_ERROR(mf->Commit());
  GGSWARM_RETURN_IF_ERROR(staging.Publish());

  FragmentReport r;
  r.bytes = f.file_size;
  r.manifest = std::move(m);
  return r;
}

}  // namespace ggswarm::fragments
