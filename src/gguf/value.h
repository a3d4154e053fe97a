// A GGUF metadata value: a scalar, a string, or an array (arrays may nest). An array keeps its
// elements as they are stored on disk (`raw`), so reading a file never allocates more than the
// file's own bytes, and writing it back reproduces them exactly; Items()/Strings() decode.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_format.h"

namespace ggswarm::gguf {

struct Value {
  ValueType type = ValueType::UINT8;
  // Scalars: unsigned integers and bools in `u`, signed in `i`, floats in `f`.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string str;                         // STRING
  ValueType elem_type = ValueType::UINT8;  // ARRAY: element type
  uint64_t count = 0;                      // ARRAY: number of elements
  std::string raw;                         // ARRAY: the elements' bytes in GGUF v3 encoding

  static Value Scalar(ValueType t, uint64_t bits);
  static Value Uint32(uint32_t v) { return Scalar(ValueType::UINT32, v); }
  static Value Uint64(uint64_t v) { return Scalar(ValueType::UINT64, v); }
  static Value Int32(int32_t v);
  static Value Float32(float v);
  static Value Bool(bool v) { return Scalar(ValueType::BOOL, v ? 1 : 0); }
  static Value String(std::string s);
  static Value Array(ValueType elem, const std::vector<Value>& items);
  static Value StringArray(const std::vector<std::string>& items);

  std::optional<int64_t> AsInt() const;           // numeric scalars and bools
  std::optional<double> AsFloat() const;          // numeric scalars
  std::vector<Value> Items() const;               // ARRAY elements, decoded
  std::vector<std::string_view> Strings() const;  // ARRAY of STRING, views into `raw`
  // A short human-readable rendering; arrays longer than `max_items` are abbreviated.
  std::string ToString(size_t max_items = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

// Appends the GGUF v3 encoding of `v` (without its type tag) to `out`.
void EncodeValue(const Value& v, std::string* out);

}  // namespace ggswarm::gguf
