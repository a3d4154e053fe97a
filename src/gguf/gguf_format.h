// The GGUF container, as llama.cpp writes it (all integers little-endian):
//
//   magic       4 bytes  "GGUF"
//   version     u32      1, 2 or 3 (v1 uses u32 for counts and lengths, v2/v3 use u64)
//   n_tensors   u64
//   n_kv        u64
//   kv[n_kv]    key: string, value_type: u32, value
//   tensor_info[n_tensors]  name: string, n_dims: u32, dims: u64[n_dims] (fastest first),
//                           type: u32 (ggml_type), offset: u64 (from the start of tensor data)
//   padding     zeros up to a multiple of `general.alignment` (default 32)
//   tensor data each tensor at its offset, offsets aligned
//
//   string = u64 length + bytes (no terminator); array = u32 element type + u64 count + values.
#pragma once

#include <cstdint>

namespace ggswarm::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;     // ggml tensors have at most 4 dimensions
constexpr int kMaxArrayNesting = 8;  // deeper nesting is hostile, not a model
constexpr const char* kAlignmentKey = "general.alignment";

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;

// Bytes of a scalar value on disk; 0 for STRING and ARRAY.
constexpr uint32_t ScalarSize(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
      return 8;
    default:
      return 0;
  }
}

const char* ValueTypeName(ValueType t);

}  // namespace ggswarm::gguf
