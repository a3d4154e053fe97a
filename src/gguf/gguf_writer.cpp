#include "gguf/gguf_writer.h"

namespace ggswarm::gguf {
namespace {

template <class T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

void PutString(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  *out += s;
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::Set(const std::string& key, Value v) {
  if (key == kAlignmentKey && v.type == ValueType::UINT32 && v.u && !(v.u & (v.u - 1))) {
    alignment_ = v.u;
  }
  for (KeyValue& kv : metadata_) {
    if (kv.key == key) {
      kv.value = std::move(v);
      return;
    }
  }
  metadata_.push_back({key, std::move(v)});
}

void GgufWriter::AddTensor(const std::string& name, GgmlType type, std::vector<uint64_t> shape) {
  TensorInfo t;
  t.name = name;
  t.type = type;
  t.n_elements = 1;
  for (uint64_t d : shape) t.n_elements *= d;
  t.shape = std::move(shape);
  t.size = RowBytes(type, t.shape[0]) * (t.n_elements / t.shape[0]);
  tensors_.push_back(std::move(t));
  // Offsets depend on the alignment, which a later Set may change: recompute them all.
  data_size_ = 0;
  for (TensorInfo& x : tensors_) {
    x.offset = AlignUp(data_size_, alignment_);
    data_size_ = x.offset + x.size;
  }
}

std::string GgufWriter::SerializeHeader() const {
  std::string h;
  Put<uint32_t>(&h, kMagic);
  Put<uint32_t>(&h, 3);
  Put<uint64_t>(&h, tensors_.size());
  Put<uint64_t>(&h, metadata_.size());
  for (const KeyValue& kv : metadata_) {
    PutString(&h, kv.key);
    Put<uint32_t>(&h, static_cast<uint32_t>(kv.value.type));
    EncodeValue(kv.value, &h);
  }
  uint64_t offset = 0;
  for (const TensorInfo& t : tensors_) {
    PutString(&h, t.name);
    Put<uint32_t>(&h, static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) Put<uint64_t>(&h, d);
    Put<uint32_t>(&h, static_cast<uint32_t>(t.type));
    offset = AlignUp(offset, alignment_);
    Put<uint64_t>(&h, offset);
    offset += t.size;
  }
  h.resize(AlignUp(h.size(), alignment_), '\0');
  return h;
}

uint64_t GgufWriter::FileSize() const { return SerializeHeader().size() + data_size_; }

Status GgufWriter::Write(const std::string& path, bool overwrite, const TensorFiller& fill) const {
  auto out = OutputFile::Create(path, overwrite);
  if (!out.ok()) return out.status();
  const std::string header = SerializeHeader();
  GGSWARM_RETURN_IF_ERROR(
      out->Write({reinterpret_cast<const uint8_t*>(header.data()), header.size()}));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorInfo& t = tensors_[i];
    GGSWARM_RETURN_IF_ERROR(out->WriteZeros(header.size() + t.offset - out->written()));
    GGSWARM_RETURN_IF_ERROR(fill(i, *out));
    if (out->written() != header.size() + t.offset + t.size) {
      return Status::InvalidArgument("tensor " + t.name + ": wrote " +
                                     std::to_string(out->written() - header.size() - t.offset) +
                                     " bytes, expected " + std::to_string(t.size));
    }
  }
  return out->Commit();
}

GgufWriter WriterFor(const GgufFile& f) {
  GgufWriter w;
  for (const KeyValue& kv : f.metadata) w.Set(kv.key, kv.value);
  for (const TensorInfo& t : f.tensors) w.AddTensor(t.name, t.type, t.shape);
  return w;
}

Status WriteCopy(const GgufFile& f, const std::string& path, bool overwrite) {
  if (!f.has_data()) return Status::InvalidArgument("no tensor data to copy (header only)");
  GgufWriter w = WriterFor(f);
  return w.Write(path, overwrite,
                 [&](size_t i, OutputFile& out) { return out.Write(f.TensorBytes(f.tensors[i])); });
}

}  // namespace ggswarm::gguf
