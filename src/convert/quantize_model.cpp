#include "convert/quantize_model.h"

#include "gguf/gguf_writer.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"

namespace ggswarm {

StatusOr<QuantizeReport> QuantizeModel(const std::string& in_path, const std::string& out_path,
                                       const TypeMix& mix, bool overwrite,
                                       const ProgressFn& progress) {
  auto in = gguf::GgufFile::Open(in_path);
  if (!in.ok()) return in.status();
  const gguf::GgufFile& f = *in;
  const int n_layer = static_cast<int>(f.GetInt(f.Architecture() + ".block_count").value_or(0));

  QuantizeReport report;
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f.metadata) w.Set(kv.key, kv.value);
  if (mix.file_type >= 0) w.Set("general.file_type", gguf::Value::Uint32(mix.file_type));
  for (const gguf::TensorInfo& t : f.tensors) {
    std::string note;
    GgmlType target = PlanTensorType(mix, t.name, t.shape[0], t.shape.size(), n_layer, &note);
    if (!Traits(t.type).dequantizable && target != t.type) {
      return Status::Unsupported("tensor " + t.name + " has type " + TypeName(t.type) +
                                 ", which ggswarm cannot convert");
    }
    if (!note.empty()) report.notes.push_back(note);
    w.AddTensor(t.name, target, t.shape);
  }

  const uint64_t total = w.FileSize();
  std::vector<float> rows_f32;
  std::vector<uint8_t> rows_out;
  Status st = w.Write(out_path, overwrite, [&](size_t i, OutputFile& out) -> Status {
    const gguf::TensorInfo& src = f.tensors[i];
    const gguf::TensorInfo& dst = w.tensors()[i];
    const auto bytes = f.TensorBytes(src);
    if (src.type == dst.type) {
      GGSWARM_RETURN_IF_ERROR(out.Write(bytes));
    } else {
      const uint64_t ne0 = src.shape[0];
      const uint64_t chunk_rows = std::max<uint64_t>(1, (1u << 20) / ne0);  // ~4 MiB of f32
      for (uint64_t r = 0; r < src.rows(); r += chunk_rows) {
        const uint64_t nr = std::min(chunk_rows, src.rows() - r);
        rows_f32.resize(nr * ne0);
        rows_out.resize(nr * dst.row_bytes());
        GGSWARM_RETURN_IF_ERROR(
            Dequantize(src.type, bytes.data() + r * src.row_bytes(), rows_f32.data(), nr * ne0));
        GGSWARM_RETURN_IF_ERROR(Quantize(dst.type, rows_f32.data(), rows_out.data(), nr * ne0));
        GGSWARM_RETURN_IF_ERROR(out.Write(rows_out));
      }
    }
    if (progress) progress(out.written(), total);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  report.in_size = f.file_size;
  report.out_size = total;
  return report;
}

}  // namespace ggswarm
