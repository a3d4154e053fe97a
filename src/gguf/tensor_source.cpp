#include "gguf/tensor_source.h"

namespace ggswarm {

StatusOr<std::unique_ptr<GgufSource>> GgufSource::Open(const std::string& path) {
  auto f = gguf::GgufFile::Open(path);
  if (!f.ok()) return f.status();
  auto s = std::unique_ptr<GgufSource>(new GgufSource());
  s->file_ = std::move(*f);
  s->path_ = path;
  return s;
}

StatusOr<TensorView> GgufSource::Get(std::string_view name) {
  const gguf::TensorInfo* t = file_.FindTensor(name);
  if (!t) return Status::NotFound("tensor '" + std::string(name) + "' is not in " + path_);
  TensorView v;
  v.info = t;
  v.row_bytes = t->row_bytes();
  v.shards.push_back({file_.TensorBytes(*t).data(), 0, t->rows()});
  return v;
}

}  // namespace ggswarm
