#include "fragments/manifest.h"

#include <filesystem>
#include <map>

#include "base/file.h"
#include "fragments/naming.h"

namespace ggswarm::fragments {

using nlohmann::json;

namespace {

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

json Manifest::ToJson() const {
  json frags = json::array();
  for (const FragmentEntry& f : fragments) {
    json e = {{"id", f.id},
              {"file", f.file},
              {"kind", f.kind},
              {"layer", f.layer >= 0 ? json(f.layer) : json(nullptr)},
              {"component", f.component},
              {"tensor", f.tensor},
              {"type", f.type},
              {"shape", f.shape},
              {"rows", {f.row_begin, f.row_end}},
              {"shard", f.shard},
              {"size", f.size},
              {"offset", f.offset}};
    if (f.expert_end > 0) e["experts"] = {f.expert_begin, f.expert_end};
    frags.push_back(std::move(e));
  }
  return {{"schema", kSchema},
          {"schema_version", schema_version},
          {"model",
           {{"name", name},
            {"architecture", architecture},
            {"hyperparameters", hyperparameters},
            {"file_name", file_name},
            {"file_size", file_size},
            {"sha256", sha256},
            {"gguf_version", gguf_version},
            {"alignment", alignment},
            {"tensor_data_offset", data_offset},
            {"tensor_count", tensor_count}}},
          {"header", {{"file", kHeaderFile}, {"size", header_size}, {"sha256", header_sha256}}},
          {"chunk_size", chunk_size},
          {"fragments", frags}};
}

StatusOr<Manifest> Manifest::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption("manifest.json is not valid JSON");
  Manifest m;
  std::string where = "manifest.json";
  try {
    if (!j.is_object() || j.value("schema", "") != kSchema) {
      return Status::Corruption("manifest.json: schema is not \"ggswarm.manifest\"");
    }
    m.schema_version = j.at("schema_version").get<int>();
    if (m.schema_version != kSchemaVersion) {
      return Status::Unsupported("manifest.json: schema_version " +
                                 std::to_string(m.schema_version) + " (this ggswarm reads " +
                                 std::to_string(kSchemaVersion) + ")");
    }
    where = "manifest.json: model";
    const json& mo = j.at("model");
    m.name = mo.at("name").get<std::string>();
    m.architecture = mo.at("architecture").get<std::string>();
    m.hyperparameters = mo.at("hyperparameters");
    m.file_name = mo.at("file_name").get<std::string>();
    m.file_size = mo.at("file_size").get<uint64_t>();
    m.sha256 = mo.at("sha256").get<std::string>();
    m.gguf_version = mo.at("gguf_version").get<uint32_t>();
    m.alignment = mo.at("alignment").get<uint64_t>();
    m.data_offset = mo.at("tensor_data_offset").get<uint64_t>();
    m.tensor_count = mo.at("tensor_count").get<uint64_t>();
    where = "manifest.json: header";
    const json& h = j.at("header");
    if (h.at("file").get<std::string>() != kHeaderFile) {
      return Status::Corruption("manifest.json: header.file is not gguf_header.dat");
    }
    m.header_size = h.at("size").get<uint64_t>();
    m.header_sha256 = h.at("sha256").get<std::string>();
    m.chunk_size = j.at("chunk_size").get<uint64_t>();
    const json& frags = j.at("fragments");
    if (!frags.is_array()) return Status::Corruption("manifest.json: fragments is not a list");
    for (size_t i = 0; i < frags.size(); ++i) {
      where = "manifest.json: fragments[" + std::to_string(i) + "]";
      const json& e = frags[i];
      FragmentEntry f;
      f.id = e.at("id").get<std::string>();
      f.file = e.at("file").get<std::string>();
      f.kind = e.at("kind").get<std::string>();
      f.layer = e.at("layer").is_null() ? -1 : e.at("layer").get<int>();
      f.component = e.at("component").get<std::string>();
      f.tensor = e.at("tensor").get<std::string>();
      f.type = e.at("type").get<std::string>();
      f.shape = e.at("shape").get<std::vector<uint64_t>>();
      const auto rows = e.at("rows").get<std::vector<uint64_t>>();
      if (rows.size() != 2) return Status::Corruption(where + ".rows is not [begin, end]");
      f.row_begin = rows[0];
      f.row_end = rows[1];
      if (e.contains("experts")) {
        const auto ex = e.at("experts").get<std::vector<uint64_t>>();
        if (ex.size() != 2 || ex[0] >= ex[1])
          return Status::Corruption(where + ".experts is not [begin, end)");
        f.expert_begin = ex[0];
        f.expert_end = ex[1];
      }
      f.shard = e.at("shard").get<int>();
      f.size = e.at("size").get<uint64_t>();
      f.offset = e.at("offset").get<uint64_t>();
      m.fragments.push_back(std::move(f));
    }
  } catch (const json::exception& e) {
    return Status::Corruption(where + ": missing or mistyped field (" + e.what() + ")");
  }

  if (!IsHex64(m.sha256)) return Status::Corruption("manifest.json: model.sha256 is not a SHA-256");
  if (!IsHex64(m.header_sha256)) {
    return Status::Corruption("manifest.json: header.sha256 is not a SHA-256");
  }
  if (m.header_size != m.data_offset || m.data_offset > m.file_size) {
    return Status::Corruption("manifest.json: header size " + std::to_string(m.header_size) +
                              " does not match tensor_data_offset " +
                              std::to_string(m.data_offset) + " within a file of " +
                              std::to_string(m.file_size) + " bytes");
  }
  uint64_t end = m.data_offset;
  for (size_t i = 0; i < m.fragments.size(); ++i) {
    const FragmentEntry& f = m.fragments[i];
    const std::string at = "manifest.json: fragments[" + std::to_string(i) + "] (" + f.file + ")";
    if (!IsHex64(f.id)) return Status::Corruption(at + ": id is not a SHA-256");
    if (!IsSafeFileName(f.file) || f.file == kManifestFile || f.file == kHeaderFile) {
      return Status::Corruption(at + ": unsafe or reserved file name");
    }
    if (f.file.find(f.id.substr(0, 16)) == std::string::npos) {
      return Status::Corruption(at + ": file name does not carry the first 16 digits of its id");
    }
    if (f.offset < end) return Status::Corruption(at + ": out of order or overlapping");
    if (f.size == 0 || f.size > m.file_size || f.offset > m.file_size - f.size) {
      return Status::Corruption(at + ": byte range runs past the end of the original file");
    }
    end = f.offset + f.size;
  }
  return m;
}

StatusOr<Manifest> Manifest::Load(const std::string& dir) {
  if (!IsDirectory(dir)) return Status::NotFound("not a fragment directory: " + dir);
  auto text = ReadSmallFile(dir + "/" + kManifestFile, kMaxManifestBytes);
  if (!text.ok()) {
    // BitTorrent clients save a torrent into SAVEPATH/NAME/: the user names SAVEPATH.
    if (!PathExists(dir + "/" + kManifestFile)) {
      std::error_code ec;
      std::vector<std::string> below;
      for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        std::error_code fec;
        if (e.is_directory(fec) && PathExists(e.path().string() + "/" + kManifestFile))
          below.push_back(e.path().string());
        if (below.size() > 1) break;
      }
      if (below.size() == 1)
        return Status::NotFound(dir + " holds no " + kManifestFile + ", but the folder " +
                                below[0] +
                                " below it does (BitTorrent clients save into SAVEPATH/NAME/): "
                                "name that one");
    }
    return text.status();
  }
  return FromJson(*text);
}

Status CheckAgainstHeader(const Manifest& m, const gguf::GgufFile& header) {
  if (header.data_offset != m.data_offset || header.tensors.size() != m.tensor_count) {
    return Status::Corruption(
        "manifest.json does not match gguf_header.dat (tensor data offset "
        "or tensor count differ)");
  }
  // Group the fragments by tensor, in order.
  std::map<std::string, std::vector<const FragmentEntry*>> by_tensor;
  for (const FragmentEntry& f : m.fragments) {
    if (f.kind != "gap") by_tensor[f.tensor].push_back(&f);
  }
  if (by_tensor.size() != header.tensors.size()) {
    return Status::Corruption("manifest.json lists fragments of " +
                              std::to_string(by_tensor.size()) + " tensors; the header has " +
                              std::to_string(header.tensors.size()));
  }
  for (const gguf::TensorInfo& t : header.tensors) {
    auto it = by_tensor.find(t.name);
    if (it == by_tensor.end()) {
      return Status::Corruption("manifest.json has no fragment of tensor " + t.name);
    }
    uint64_t pos = header.data_offset + t.offset, row = 0;
    for (const FragmentEntry* f : it->second) {
      if (f->type != TypeName(t.type) || f->shape != t.shape || f->offset != pos ||
          f->row_begin != row || f->row_end <= row || f->row_end > t.rows() ||
          f->size != (f->row_end - f->row_begin) * t.row_bytes()) {
        return Status::Corruption("manifest.json: fragment " + f->file + " does not match tensor " +
                                  t.name + " in gguf_header.dat (type, shape, rows or offset)");
      }
      // Experts, where named, are whole and are the rows the fragment holds.
      const uint64_t per_expert = t.shape.size() == 3 ? t.shape[1] : 0;
      if (f->expert_end > 0 &&
          (!per_expert || f->row_begin != f->expert_begin * per_expert ||
           f->row_end != f->expert_end * per_expert || f->expert_end > t.shape[2])) {
        return Status::Corruption("manifest.json: fragment " + f->file + " claims experts [" +
                                  std::to_string(f->expert_begin) + ", " +
                                  std::to_string(f->expert_end) + ") of " + t.name +
                                  ", which are not its rows");
      }
      pos += f->size;
      row = f->row_end;
    }
    if (row != t.rows()) {
      return Status::Corruption("manifest.json: the fragments of tensor " + t.name +
                                " cover rows [0, " + std::to_string(row) + ") of " +
                                std::to_string(t.rows()));
    }
  }
  return Status::Ok();
}

}  // namespace ggswarm::fragments
