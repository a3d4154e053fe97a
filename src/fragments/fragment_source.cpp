#include "fragments/fragment_source.h"

#include "base/sha256.h"
#include "fragments/fragments.h"

namespace ggswarm::fragments {

StatusOr<std::unique_ptr<FragmentSource>> FragmentSource::Open(const std::string& dir) {
  auto m = Manifest::Load(dir);
  if (!m.ok()) return m.status();
  auto header = LoadHeader(dir, *m);
  if (!header.ok()) return header.status();
  auto s = std::unique_ptr<FragmentSource>(new FragmentSource());
  s->dir_ = dir;
  s->manifest_ = std::move(*m);
  s->header_ = std::move(*header);
  for (size_t i = 0; i < s->manifest_.fragments.size(); ++i) {
    const FragmentEntry& f = s->manifest_.fragments[i];
    if (!f.tensor.empty()) s->by_tensor_[f.tensor].push_back(i);
  }
  return s;
}

uint64_t FragmentSource::bytes_mapped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_mapped_;
}

StatusOr<TensorView> FragmentSource::Get(std::string_view name) {
  const gguf::TensorInfo* t = header_.FindTensor(name);
  if (!t) return Status::NotFound("tensor '" + std::string(name) + "' is not in " + dir_);
  auto it = by_tensor_.find(name);
  if (it == by_tensor_.end())
    return Status::Corruption("manifest.json lists no fragment for tensor '" + std::string(name) +
                              "'");
  TensorView v;
  v.info = t;
  v.row_bytes = t->row_bytes();
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t next_row = 0;
  for (size_t idx : it->second) {
    const FragmentEntry& f = manifest_.fragments[idx];
    if (f.row_begin != next_row || f.row_end <= f.row_begin || f.row_end > t->rows() ||
        f.size != (f.row_end - f.row_begin) * v.row_bytes)
      return Status::Corruption("fragment " + f.file + " does not hold the rows of '" +
                                std::string(name) + "' that the manifest claims");
    next_row = f.row_end;
    auto m = mapped_.find(idx);
    if (m == mapped_.end()) {
      auto map = MapCheckedFragment(dir_, f);
      if (!map.ok()) return map.status().WithContext(dir_);
      bytes_mapped_ += f.size;
      m = mapped_.emplace(idx, std::make_unique<MappedFile>(std::move(*map))).first;
    }
    v.shards.push_back({m->second->bytes().data(), f.row_begin, f.row_end});
  }
  if (next_row != t->rows())
    return Status::Corruption("the fragments of '" + std::string(name) + "' cover " +
                              std::to_string(next_row) + " of its " + std::to_string(t->rows()) +
                              " rows");
  return v;
}

StatusOr<std::unique_ptr<TensorSource>> OpenModel(const std::string& path) {
  if (IsDirectory(path)) {
    auto s = FragmentSource::Open(path);
    if (!s.ok()) return s.status();
    return std::unique_ptr<TensorSource>(std::move(*s));
  }
  if (!PathExists(path)) return Status::NotFound(path + ": no such file or directory");
  auto s = GgufSource::Open(path);
  if (!s.ok()) return s.status();
  return std::unique_ptr<TensorSource>(std::move(*s));
}

StatusOr<std::string> OriginalSha256(const std::string& path) {
  if (IsDirectory(path)) {
    auto m = Manifest::Load(path);
    if (!m.ok()) return m.status();
    return m->sha256;
  }
  auto in = InputFile::Open(path);
  if (!in.ok()) return in.status();
  std::vector<uint8_t> buf(kIoChunk);
  return Sha256HexOfFile(*in, buf);
}

StatusOr<std::string> OriginalHeader(const std::string& path, uint64_t data_offset) {
  if (IsDirectory(path)) {  // gguf_header.dat, checked against the manifest as verify does
    auto m = Manifest::Load(path);
    if (!m.ok()) return m.status();
    std::string bytes;
    auto h = LoadHeader(path, *m, &bytes);
    if (!h.ok()) return h.status();
    return bytes;
  }
  auto in = InputFile::Open(path);
  if (!in.ok()) return in.status();
  std::string b(data_offset, '\0');
  GGSWARM_RETURN_IF_ERROR(in->ReadAt(0, {reinterpret_cast<uint8_t*>(b.data()), b.size()}));
  return b;
}

}  // namespace ggswarm::fragments
