#include "gguf/gguf_file.h"

#include <unordered_set>

#include "gguf/cursor.h"

namespace ggswarm::gguf {
namespace {

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

struct Counts {
  uint64_t tensors, kv;
};

// Magic, version and the two counts, each checked against what the file can hold.
Counts ParseHeader(Cursor& c, std::span<const uint8_t> bytes, GgufFile* f) {
  if (bytes.size() < 8) {
    c.Fail("file is " + std::to_string(bytes.size()) + " bytes, too short for a GGUF header");
  }
  const uint32_t magic = c.Read<uint32_t>("magic");
  if (magic != kMagic) {
    throw ParseError{"bad magic " + Hex32(magic) + " (not a GGUF file; expected \"GGUF\")", 0};
  }
  f->version = c.Read<uint32_t>("version");
  if (f->version == 1) {
    throw ParseError{"GGUF version 1 is not supported (re-convert with a current llama.cpp)", 4};
  }
  if (f->version != 2 && f->version != 3) {
    throw ParseError{"unsupported GGUF version " + std::to_string(f->version), 4};
  }
  const uint64_t n_tensors = c.Read<uint64_t>("tensor count");
  const uint64_t n_kv = c.Read<uint64_t>("metadata count");
  // Smallest encodings: a key/value is a length, a type and one byte; a tensor info is a
  // name length, n_dims, one dimension, a type and an offset.
  if (n_kv > c.remaining() / 13) {
    throw ParseError{"metadata count " + std::to_string(n_kv) + " cannot fit in a file of " +
                         std::to_string(bytes.size()) + " bytes",
                     16};
  }
  if (n_tensors > c.remaining() / 32) {
    throw ParseError{"tensor count " + std::to_string(n_tensors) + " cannot fit in a file of " +
                         std::to_string(bytes.size()) + " bytes",
                     8};
  }
  return {n_tensors, n_kv};
}

// The key/value pairs; general.alignment is checked and taken as it passes.
void ParseMetadata(Cursor& c, uint64_t n_kv, GgufFile* f) {
  std::unordered_set<std::string_view> keys;
  f->metadata.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t at = c.offset();
    std::string_view key = c.ReadString("metadata key");
    if (key.empty()) throw ParseError{"empty metadata key", at};
    if (!keys.insert(key).second) {
      throw ParseError{"duplicate metadata key \"" + std::string(key) + "\"", at};
    }
    const uint64_t value_at = c.offset();
    const ValueType t = ReadValueType(c, "metadata value type");
    KeyValue kv{std::string(key), ReadValue(c, t, 0)};
    if (kv.key == kAlignmentKey) {
      if (t != ValueType::UINT32) {
        throw ParseError{
            "general.alignment has type " + std::string(ValueTypeName(t)) + ", expected u32",
            value_at};
      }
      const uint64_t a = kv.value.u;
      if (a == 0 || (a & (a - 1)) != 0) {
        throw ParseError{"general.alignment " + std::to_string(a) + " is not a power of two",
                         value_at};
      }
      f->alignment = a;
    }
    f->metadata.push_back(std::move(kv));
  }
}

// The tensor infos: names, shapes, types and byte sizes, each checked on its own.
void ParseTensorInfos(Cursor& c, uint64_t n_tensors, GgufFile* f) {
  std::unordered_set<std::string_view> names;
  f->tensors.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t at = c.offset();
    TensorInfo t;
    std::string_view name = c.ReadString("tensor name");
    if (name.empty()) throw ParseError{"tensor " + std::to_string(k) + " has an empty name", at};
    if (name.size() >= 64) {  // ggml's GGML_MAX_NAME, terminator included
      throw ParseError{"tensor name of " + std::to_string(name.size()) +
                           " bytes is longer than ggml's limit of 63",
                       at};
    }
    t.name = std::string(name);
    if (!names.insert(name).second)
      throw ParseError{"duplicate tensor name \"" + t.name + "\"", at};
    const uint64_t dims_at = c.offset();
    const uint32_t n_dims = c.Read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) {
      throw ParseError{"tensor \"" + t.name + "\" has " + std::to_string(n_dims) +
                           " dimensions (1 to 4 allowed)",
                       dims_at};
    }
    t.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.Read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > (uint64_t{1} << 62) ||
          __builtin_mul_overflow(t.n_elements, ne, &t.n_elements) ||
          t.n_elements > (uint64_t{1} << 62)) {
        throw ParseError{"tensor \"" + t.name + "\" has dimension " + std::to_string(d) + " = " +
                             std::to_string(ne) + " (zero, or too many elements)",
                         c.offset() - 8};
      }
      t.shape.push_back(ne);
    }
    const uint64_t type_at = c.offset();
    const uint32_t type_id = c.Read<uint32_t>("tensor type");
    const TypeTraits* tr = FindType(type_id);
    if (!tr) {
      if (const char* known = UnsupportedTypeName(type_id)) {
        throw ParseError{"tensor \"" + t.name + "\" has ggml type " + std::to_string(type_id) +
                             " (" + known + "), a type ggswarm does not support",
                         type_at};
      }
      throw ParseError{"tensor \"" + t.name + "\" has unknown ggml type " + std::to_string(type_id),
                       type_at};
    }
    t.type = tr->type;
    if (t.shape[0] % tr->block_size != 0) {
      throw ParseError{"tensor \"" + t.name + "\" has rows of " + std::to_string(t.shape[0]) +
                           " elements, not a whole number of " + tr->name + " blocks of " +
                           std::to_string(tr->block_size),
                       dims_at};
    }
    // Bytes = blocks × bytes per block: 2^62 F32 elements would be 2^64 bytes, so checked.
    if (__builtin_mul_overflow(t.n_elements / tr->block_size, uint64_t{tr->type_size}, &t.size) ||
        t.size > (uint64_t{1} << 62)) {
      throw ParseError{"tensor \"" + t.name + "\" of " + std::to_string(t.n_elements) + " " +
                           tr->name + " elements would take more than 2^62 bytes",
                       dims_at};
    }
    t.offset = c.Read<uint64_t>("tensor offset");
    f->tensors.push_back(std::move(t));
  }
}

// Where the tensor data starts, and every tensor inside it: aligned, in order, no overlap,
// within the file.
void CheckDataLayout(const Cursor& c, std::span<const uint8_t> bytes, const ParseOptions& opts,
                     uint64_t file_size, GgufFile* f) {
  const uint64_t info_end = c.pos();
  uint64_t data = (info_end + f->alignment - 1) / f->alignment * f->alignment;
  if (f->tensors.empty() && data > file_size) data = file_size;
  if (data > file_size) {
    throw ParseError{"file ends at byte " + std::to_string(file_size) +
                         ", before the tensor data at " + std::to_string(data),
                     info_end};
  }
  f->data_offset = data;
  if (opts.full_file_size && bytes.size() < data) {
    throw ParseError{"header holds " + std::to_string(bytes.size()) +
                         " bytes; the tensor data starts at " + std::to_string(data),
                     bytes.size()};
  }

  uint64_t prev_end = 0;
  std::string prev = "the start of tensor data";
  const uint64_t data_size = file_size - data;
  for (const TensorInfo& t : f->tensors) {
    if (t.offset % f->alignment != 0) {
      throw ParseError{"tensor \"" + t.name + "\" offset " + std::to_string(t.offset) +
                           " is not a multiple of the alignment " + std::to_string(f->alignment),
                       data + t.offset};
    }
    if (t.offset < prev_end) {
      throw ParseError{"tensor \"" + t.name + "\" at offset " + std::to_string(t.offset) +
                           " overlaps or comes before the end of " + prev + " (" +
                           std::to_string(prev_end) + ")",
                       data + t.offset};
    }
    if (t.offset > data_size || t.size > data_size - t.offset) {
      throw ParseError{"tensor \"" + t.name + "\" (" + std::to_string(t.size) +
                           " bytes at data offset " + std::to_string(t.offset) +
                           ") runs past the end of the file (" + std::to_string(file_size) +
                           " bytes)",
                       data + std::min(t.offset, data_size)};
    }
    prev_end = t.offset + t.size;
    prev = "tensor \"" + t.name + "\"";
  }
}

void ParseInto(std::span<const uint8_t> bytes, const ParseOptions& opts, GgufFile* f) {
  Cursor c(bytes.data(), bytes.size());
  const uint64_t file_size = opts.full_file_size.value_or(bytes.size());
  f->file_size = file_size;
  const Counts n = ParseHeader(c, bytes, f);
  ParseMetadata(c, n.kv, f);
  ParseTensorInfos(c, n.tensors, f);
  CheckDataLayout(c, bytes, opts, file_size, f);
}

}  // namespace

StatusOr<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes, const ParseOptions& opts) {
  GgufFile f;
  try {
    ParseInto(bytes, opts, &f);
  } catch (const ParseError& e) {
    return Status::Corruption(e.message + " (at byte " + std::to_string(e.offset) + ")");
  }
  return f;
}

StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  auto map = MappedFile::Open(path);
  if (!map.ok()) return map.status();
  auto map_ptr = std::make_shared<MappedFile>(std::move(map.value()));
  auto f = Parse(map_ptr->bytes());
  if (!f.ok()) return Status::Corruption(path + ": " + f.status().message());
  f->map_ = std::move(map_ptr);
  return f;
}

const Value* GgufFile::Find(std::string_view key) const {
  for (const KeyValue& kv : metadata) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (!v || v->type != ValueType::STRING) return std::nullopt;
  return v->str;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  return v ? v->AsInt() : std::nullopt;
}

std::string GgufFile::Architecture() const {
  return GetString("general.architecture").value_or("");
}

uint64_t GgufFile::ParameterCount() const {
  uint64_t n = 0;
  for (const TensorInfo& t : tensors) n += t.n_elements;
  return n;
}

std::span<const uint8_t> GgufFile::TensorBytes(const TensorInfo& t) const {
  if (!map_) return {};
  return map_->bytes().subspan(data_offset + t.offset, t.size);
}

std::span<const uint8_t> GgufFile::FileBytes() const {
  return map_ ? map_->bytes() : std::span<const uint8_t>{};
}

}  // namespace ggswarm::gguf
