#include "net/store.h"

#include <unistd.h>

#include <filesystem>

#include "base/file.h"
#include "fragments/fragments.h"
#include "fragments/naming.h"
#include "fragments/selection.h"

namespace ggswarm::net {
namespace {

namespace fs = std::filesystem;

// Copies `from` to `to` through a temporary name, so `to` appears only when complete.
Status CopyWhole(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".partial-" + std::to_string(::getpid());
  std::error_code ec;
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("copying " + from + ": " + ec.message());
  fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::IOError("storing " + to + ": " + ec.message());
  }
  return Status::Ok();
}

class Staging {
 public:
  explicit Staging(std::string path) : path_(std::move(path)) {}
  ~Staging() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

StatusOr<Store> Store::Open(const std::string& root, bool create) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    if (!create) return Status::NotFound("no store at " + root);
  } else if (!fs::is_directory(root + "/blobs", ec) && !fs::is_directory(root + "/models", ec) &&
             !fs::is_empty(root, ec)) {
    // A folder that holds something else is not made into a store behind the user's back.
    const bool fragments = fs::exists(root + "/" + fragments::kManifestFile, ec);
    return Status::InvalidArgument(
        root + " is not a store (it has no blobs/ or models/)" +
        (fragments ? ": it is a fragment directory; seed it with --seed " + root +
                         ", or copy it into a store with ggswarm store add STORE " + root
                   : "; to seed a fragment directory use --seed DIR, and to make a store use "
                     "ggswarm store add STORE DIR"));
  }
  for (const char* sub : {"blobs", "models"}) {
    fs::create_directories(root + "/" + sub, ec);
    if (ec) return Status::IOError("cannot create the store " + root + ": " + ec.message());
  }
  Store s;
  s.root_ = root;
  return s;
}

std::vector<std::string> Store::ModelDirs() const {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ + "/models", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // staging
    if (PathExists(e.path().string() + "/" + kTorrentFile)) dirs.push_back(e.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

StatusOr<StoreAddReport> Store::Add(const std::string& src, const ProgressFn& progress) {
  auto check = fragments::VerifyDirectory(src, 0, progress);
  if (!check.ok()) return check.status();
  if (!check->ok())
    return Status::Corruption(src + " does not verify (" + check->problems[0].file + ": " +
                              check->problems[0].what + "); the store takes only good copies");
  const fragments::Manifest& m = check->manifest;
  const bool partial = !check->not_selected.empty();
  const bool has_torrent = PathExists(src + "/" + kTorrentFile);
  if (has_torrent) {
    auto t = LoadTorrent(src + "/" + kTorrentFile);
    if (!t.ok()) return t.status();
    GGSWARM_RETURN_IF_ERROR(FlatFileNames(t->ti->files(), nullptr));
    GGSWARM_RETURN_IF_ERROR(CheckTorrentMatchesManifest(t->ti->files(), m));
  } else if (partial) {
    return Status::InvalidArgument(src + " is a partial copy without its model.torrent");
  }

  const std::string staging = root_ + "/models/.incoming-" + std::to_string(::getpid()) + "-" +
                              fs::path(src).filename().string();
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return Status::IOError("cannot create " + staging + ": " + ec.message());
  Staging guard(staging);
  for (const char* f : {fragments::kManifestFile, fragments::kHeaderFile, fragments::kSelectionFile,
                        kTorrentFile}) {
    if (PathExists(src + "/" + f))
      GGSWARM_RETURN_IF_ERROR(CopyWhole(src + "/" + f, staging + "/" + f));
  }
  StoreAddReport r;
  for (const auto& f : m.fragments) {
    const std::string from = src + "/" + f.file;
    if (!PathExists(from)) continue;  // outside a partial copy's selection
    const std::string blob = root_ + "/blobs/" + f.id;
    if (PathExists(blob)) {
      r.shared_bytes += f.size;
    } else {
      GGSWARM_RETURN_IF_ERROR(CopyWhole(from, blob));
      r.new_blobs++;
      r.new_bytes += f.size;
    }
    fs::create_hard_link(blob, staging + "/" + f.file, ec);
    if (ec) return Status::IOError("linking " + f.file + " in the store: " + ec.message());
    r.fragments++;
  }
  if (!has_torrent) {
    TorrentOptions to;
    to.checked = true;  // verified above, and not partial
    auto t = MakeTorrent(staging, to);
    if (!t.ok()) return t.status();
  }
  auto t = LoadTorrent(staging + "/" + kTorrentFile);
  if (!t.ok()) return t.status();
  r.torrent = Summarize(*t->ti);
  const std::string name = fragments::SanitizeName(m.name.empty() ? "model" : m.name);
  r.model_dir = root_ + "/models/" + name + "-" + r.torrent.info_hash.substr(0, 16);
  if (PathExists(r.model_dir))
    return Status::Exists("the store already holds this model, in " + r.model_dir);
  fs::rename(staging, r.model_dir, ec);
  if (ec) return Status::IOError("cannot add " + r.model_dir + ": " + ec.message());
  guard.Release();
  return r;
}

}  // namespace ggswarm::net
