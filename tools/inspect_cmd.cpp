#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/file.h"
#include "base/text.h"
#include "commands.h"
#include "fragments/fragment_source.h"
#include "gguf/gguf_file.h"
#include "quant/dequantize.h"

namespace ggswarm::cli {
namespace {

using nlohmann::json;

std::string Shape(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

json ValueJson(const gguf::Value& v, size_t max_items) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::STRING:
      return v.str;
    case ValueType::BOOL:
      return v.u != 0;
    case ValueType::FLOAT32:
    case ValueType::FLOAT64:
      return v.f;
    case ValueType::ARRAY: {
      json items = json::array();
      if (v.elem_type == ValueType::STRING) {
        for (std::string_view s : v.Strings()) {
          if (items.size() >= max_items) break;
          items.push_back(std::string(s));
        }
      } else {
        for (const gguf::Value& it : v.Items()) {
          if (items.size() >= max_items) break;
          items.push_back(ValueJson(it, max_items));
        }
      }
      if (v.count <= max_items) return items;
      return {{"type", std::string("array of ") + gguf::ValueTypeName(v.elem_type)},
              {"count", v.count},
              {"first", items}};
    }
    default:
      return *v.AsInt();
  }
}

}  // namespace

int Fail(const std::string& message) {
  std::fprintf(stderr, "ggswarm: error: %s\n", message.c_str());
  return 1;
}

int RunInspect(const std::string& path, bool as_json) {
  auto opened = fragments::OpenModel(path);
  if (!opened.ok()) return Fail(opened.status().ToString());
  const gguf::GgufFile& f = (*opened)->header();
  const auto* frag = dynamic_cast<const fragments::FragmentSource*>(opened->get());
  const fragments::Manifest* manifest = frag ? &frag->manifest() : nullptr;
  const std::string arch = f.Architecture();
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // bytes, tensors
  for (const gguf::TensorInfo& t : f.tensors) {
    by_type[TypeName(t.type)].first += t.size;
    by_type[TypeName(t.type)].second += 1;
  }
  if (as_json) {
    json j;
    j["path"] = path;
    j["source"] = manifest ? "fragments" : "gguf";
    j["gguf_version"] = f.version;
    j["file_size"] = f.file_size;
    j["alignment"] = f.alignment;
    j["tensor_data_offset"] = f.data_offset;
    j["architecture"] = arch;
    json meta = json::object();
    json hp = json::object();
    for (const gguf::KeyValue& kv : f.metadata) {
      meta[kv.key] = ValueJson(kv.value, 16);
      if (!arch.empty() && kv.key.rfind(arch + ".", 0) == 0 &&
          kv.value.type != gguf::ValueType::ARRAY) {
        hp[kv.key.substr(arch.size() + 1)] = ValueJson(kv.value, 16);
      }
    }
    j["metadata"] = meta;
    j["hyperparameters"] = hp;
    json tensors = json::array();
    for (const gguf::TensorInfo& t : f.tensors) {
      tensors.push_back({{"name", t.name},
                         {"type", TypeName(t.type)},
                         {"shape", t.shape},
                         {"size", t.size},
                         {"offset", f.data_offset + t.offset}});
    }
    j["tensors"] = tensors;
    j["parameter_count"] = f.ParameterCount();
    json sizes = json::object();
    for (const auto& [type, st] : by_type)
      sizes[type] = {{"bytes", st.first}, {"tensors", st.second}};
    j["size_by_type"] = sizes;
    if (manifest) {
      j["fragments"] = manifest->fragments.size();
      j["model_sha256"] = manifest->sha256;
    }
    std::printf("%s\n", JsonText(j, 1).c_str());
    return 0;
  }
  std::printf("%s: GGUF v%u, %.2f MB, %zu tensors, %zu metadata keys%s\n", path.c_str(), f.version,
              f.file_size / 1e6, f.tensors.size(), f.metadata.size(),
              manifest ? (" (fragment directory, " + std::to_string(manifest->fragments.size()) +
                          " fragments)")
                             .c_str()
                       : "");
  std::printf("architecture: %s, parameters: %llu (%.3f B), alignment %llu, tensor data at %llu\n",
              arch.empty() ? "(none)" : arch.c_str(),
              static_cast<unsigned long long>(f.ParameterCount()), f.ParameterCount() / 1e9,
              static_cast<unsigned long long>(f.alignment),
              static_cast<unsigned long long>(f.data_offset));
  std::printf("\nmetadata:\n");
  for (const gguf::KeyValue& kv : f.metadata) {
    std::printf(
        "  %-44s %-5s %s\n", kv.key.c_str(),
        kv.value.type == gguf::ValueType::ARRAY ? "array" : gguf::ValueTypeName(kv.value.type),
        kv.value.ToString(6).c_str());
  }
  std::printf("\ntensors:\n  %-34s %-6s %-24s %12s %14s\n", "name", "type", "shape", "bytes",
              "offset");
  for (const gguf::TensorInfo& t : f.tensors) {
    std::printf("  %-34s %-6s %-24s %12llu %14llu\n", t.name.c_str(), TypeName(t.type),
                Shape(t.shape).c_str(), static_cast<unsigned long long>(t.size),
                static_cast<unsigned long long>(f.data_offset + t.offset));
  }
  std::printf("\nsize by type:\n");
  for (const auto& [type, st] : by_type) {
    std::printf("  %-6s %5llu tensors %12.2f MB\n", type.c_str(),
                static_cast<unsigned long long>(st.second), st.first / 1e6);
  }
  return 0;
}

int RunTensor(const std::string& path, const std::string& name, const std::string& rows_arg,
              uint64_t count, const std::string& npy_out, bool force) {
  auto opened = fragments::OpenModel(path);
  if (!opened.ok()) return Fail(opened.status().ToString());
  const gguf::TensorInfo* t = (*opened)->header().FindTensor(name);
  if (!t) return Fail("no tensor named \"" + name + "\" in " + path);
  if (!Traits(t->type).dequantizable) {
    return Fail(std::string("cannot dequantize type ") + TypeName(t->type));
  }
  auto view = (*opened)->Get(name);  // mapped; from fragments, each checked first
  if (!view.ok()) return Fail(view.status().ToString());
  uint64_t r0 = 0, r1 = t->rows();
  if (!rows_arg.empty()) {
    unsigned long long a = 0, b = 0;
    char extra = 0;
    if (std::sscanf(rows_arg.c_str(), "%llu:%llu%c", &a, &b, &extra) != 2 || a >= b ||
        b > t->rows()) {
      return Fail("--rows " + rows_arg +
                  ": expected A:B with 0 <= A < B <= " + std::to_string(t->rows()));
    }
    r0 = a;
    r1 = b;
    count = (r1 - r0) * t->shape[0];
  }
  const uint64_t ne0 = t->shape[0];
  std::printf("%s: %s %s, %llu elements\n", name.c_str(), TypeName(t->type),
              Shape(t->shape).c_str(), static_cast<unsigned long long>(t->n_elements));
  std::vector<float> row(ne0);
  uint64_t shown = 0;
  for (uint64_t r = r0; r < r1 && shown < count; ++r) {
    Status st = Dequantize(t->type, view->Row(r), row.data(), ne0);
    if (!st.ok()) return Fail(st.ToString());
    std::printf("row %llu:", static_cast<unsigned long long>(r));
    for (uint64_t k = 0; k < ne0 && shown < count; ++k, ++shown) std::printf(" %.8g", row[k]);
    std::printf("\n");
  }
  if (!npy_out.empty()) {
    // NumPy .npy v1.0: magic, header length, a Python dict literal padded to 64 bytes.
    std::string shape = "(";
    for (size_t i = t->shape.size(); i-- > 0;) shape += std::to_string(t->shape[i]) + ", ";
    if (t->shape.size() > 1) shape.resize(shape.size() - 2);
    shape += ")";
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    const size_t unpadded = 10 + dict.size() + 1;
    dict.append((64 - unpadded % 64) % 64, ' ');
    dict += '\n';
    std::string head = "\x93NUMPY";
    head += '\x01';
    head += '\x00';
    head += static_cast<char>(dict.size() & 0xff);
    head += static_cast<char>(dict.size() >> 8);
    head += dict;
    auto out = OutputFile::Create(npy_out, force);
    if (!out.ok()) return Fail(out.status().ToString());
    Status st = out->Write({reinterpret_cast<const uint8_t*>(head.data()), head.size()});
    for (uint64_t r = 0; st.ok() && r < t->rows(); ++r) {
      st = Dequantize(t->type, view->Row(r), row.data(), ne0);
      if (st.ok()) st = out->Write({reinterpret_cast<const uint8_t*>(row.data()), ne0 * 4});
    }
    if (st.ok()) st = out->Commit();
    if (!st.ok()) return Fail(st.ToString());
    std::printf("wrote %s (float32, shape %s)\n", npy_out.c_str(), shape.c_str());
  }
  return 0;
}

}  // namespace ggswarm::cli
