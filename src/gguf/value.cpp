#include "gguf/value.h"

#include <cstdio>

#include "gguf/cursor.h"

namespace ggswarm::gguf {

const char* ValueTypeName(ValueType t) {
  static const char* kNames[] = {"u8",   "i8",  "u16",   "i16", "u32", "i32", "f32",
                                 "bool", "str", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < kValueTypeCount ? kNames[i] : "?";
}

ValueType ReadValueType(Cursor& c, const char* what) {
  const uint32_t t = c.Read<uint32_t>(what);
  if (t >= kValueTypeCount) {
    c.Fail(std::string("unknown value type ") + std::to_string(t) + " in " + what);
  }
  return static_cast<ValueType>(t);
}

Value ReadValue(Cursor& c, ValueType t, int depth) {
  if (t == ValueType::STRING) return Value::String(std::string(c.ReadString("string value")));
  if (t != ValueType::ARRAY) {
    const uint32_t n = ScalarSize(t);
    c.Need(n, "scalar value");
    uint64_t bits = 0;
    std::memcpy(&bits, c.here(), n);
    c.Skip(n, "scalar value");
    if (t == ValueType::BOOL && bits > 1) c.Fail("bool value " + std::to_string(bits));
    return Value::Scalar(t, bits);
  }
  if (depth >= kMaxArrayNesting) c.Fail("arrays nested deeper than 8 levels");
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = ReadValueType(c, "array element type");
  v.count = c.Read<uint64_t>("array length");
  const uint64_t start = c.pos();
  // Smallest encoding of one element: a scalar's size, a string's length field, or a nested
  // array's type and count. The count must fit before anything is walked.
  const uint64_t min_elem = v.elem_type == ValueType::STRING  ? 8
                            : v.elem_type == ValueType::ARRAY ? 12
                                                              : ScalarSize(v.elem_type);
  if (v.count > c.remaining() / min_elem) {
    c.Fail("array of " + std::to_string(v.count) + " elements cannot fit in the " +
           std::to_string(c.remaining()) + " remaining bytes");
  }
  if (v.elem_type == ValueType::STRING) {
    for (uint64_t k = 0; k < v.count; ++k) c.ReadString("array string");
  } else if (v.elem_type == ValueType::ARRAY) {
    for (uint64_t k = 0; k < v.count; ++k) ReadValue(c, ValueType::ARRAY, depth + 1);
  } else if (v.elem_type == ValueType::BOOL) {
    for (uint64_t k = 0; k < v.count; ++k) {
      if (c.Read<uint8_t>("array bool") > 1) c.Fail("bool array element is neither 0 nor 1");
    }
  } else {
    c.Skip(v.count * min_elem, "array elements");
  }
  v.raw.assign(reinterpret_cast<const char*>(c.here()) - (c.pos() - start), c.pos() - start);
  return v;
}

Value Value::Scalar(ValueType t, uint64_t bits) {
  Value v;
  v.type = t;
  switch (t) {
    case ValueType::INT8:
      v.i = static_cast<int8_t>(bits);
      break;
    case ValueType::INT16:
      v.i = static_cast<int16_t>(bits);
      break;
    case ValueType::INT32:
      v.i = static_cast<int32_t>(bits);
      break;
    case ValueType::INT64:
      v.i = static_cast<int64_t>(bits);
      break;
    case ValueType::FLOAT32: {
      float f;
      const uint32_t b = static_cast<uint32_t>(bits);
      std::memcpy(&f, &b, 4);
      v.f = f;
      break;
    }
    case ValueType::FLOAT64:
      std::memcpy(&v.f, &bits, 8);
      break;
    default:
      v.u = bits;
      break;
  }
  return v;
}

Value Value::Int32(int32_t x) { return Scalar(ValueType::INT32, static_cast<uint32_t>(x)); }

Value Value::Float32(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return Scalar(ValueType::FLOAT32, b);
}

Value Value::String(std::string s) {
  Value v;
  v.type = ValueType::STRING;
  v.str = std::move(s);
  return v;
}

Value Value::Array(ValueType elem, const std::vector<Value>& items) {
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = elem;
  v.count = items.size();
  for (const Value& it : items) EncodeValue(it, &v.raw);
  return v;
}

Value Value::StringArray(const std::vector<std::string>& items) {
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = ValueType::STRING;
  v.count = items.size();
  for (const std::string& s : items) {
    const uint64_t n = s.size();
    v.raw.append(reinterpret_cast<const char*>(&n), 8);
    v.raw += s;
  }
  return v;
}

namespace {

uint64_t ScalarBits(const Value& v) {
  uint64_t bits = 0;
  switch (v.type) {
    case ValueType::INT8:
    case ValueType::INT16:
    case ValueType::INT32:
    case ValueType::INT64:
      bits = static_cast<uint64_t>(v.i);
      break;
    case ValueType::FLOAT32: {
      const float f = static_cast<float>(v.f);
      uint32_t b;
      std::memcpy(&b, &f, 4);
      bits = b;
      break;
    }
    case ValueType::FLOAT64:
      std::memcpy(&bits, &v.f, 8);
      break;
    default:
      bits = v.u;
      break;
  }
  return bits;
}

}  // namespace

void EncodeValue(const Value& v, std::string* out) {
  if (v.type == ValueType::STRING) {
    const uint64_t n = v.str.size();
    out->append(reinterpret_cast<const char*>(&n), 8);
    *out += v.str;
  } else if (v.type == ValueType::ARRAY) {
    const uint32_t t = static_cast<uint32_t>(v.elem_type);
    out->append(reinterpret_cast<const char*>(&t), 4);
    out->append(reinterpret_cast<const char*>(&v.count), 8);
    *out += v.raw;
  } else {
    const uint64_t bits = ScalarBits(v);
    out->append(reinterpret_cast<const char*>(&bits), ScalarSize(v.type));
  }
}

std::vector<Value> Value::Items() const {
  std::vector<Value> items;
  if (type != ValueType::ARRAY) return items;
  Cursor c(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  try {
    items.reserve(count);
    for (uint64_t k = 0; k < count; ++k) items.push_back(ReadValue(c, elem_type, 1));
  } catch (const ParseError&) {
    // `raw` was validated when it was read or built; a failure here cannot happen.
  }
  return items;
}

std::vector<std::string_view> Value::Strings() const {
  std::vector<std::string_view> items;
  if (type != ValueType::ARRAY || elem_type != ValueType::STRING) return items;
  Cursor c(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  try {
    items.reserve(count);
    for (uint64_t k = 0; k < count; ++k) items.push_back(c.ReadString("string"));
  } catch (const ParseError&) {
  }
  return items;
}

std::optional<int64_t> Value::AsInt() const {
  switch (type) {
    case ValueType::INT8:
    case ValueType::INT16:
    case ValueType::INT32:
    case ValueType::INT64:
      return i;
    case ValueType::UINT8:
    case ValueType::UINT16:
    case ValueType::UINT32:
    case ValueType::UINT64:
    case ValueType::BOOL:
      return static_cast<int64_t>(u);
    default:
      return std::nullopt;
  }
}

std::optional<double> Value::AsFloat() const {
  if (type == ValueType::FLOAT32 || type == ValueType::FLOAT64) return f;
  if (auto x = AsInt()) return static_cast<double>(*x);
  return std::nullopt;
}

std::string Value::ToString(size_t max_items) const {
  switch (type) {
    case ValueType::STRING: {
      std::string s = str.size() > 80 ? str.substr(0, 77) + "..." : str;
      return "\"" + s + "\"";
    }
    case ValueType::BOOL:
      return u ? "true" : "false";
    case ValueType::FLOAT32:
    case ValueType::FLOAT64: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", f);
      return buf;
    }
    case ValueType::ARRAY: {
      std::string s = "[";
      // Decode only what is shown: a 131,072-entry vocabulary prints in constant time.
      Cursor c(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      try {
        for (uint64_t k = 0; k < count && k < max_items; ++k) {
          if (k) s += ", ";
          s += ReadValue(c, elem_type, 1).ToString(max_items);
        }
      } catch (const ParseError&) {
      }
      if (count > max_items) s += ", ... (" + std::to_string(count) + " items)";
      return s + "]";
    }
    default:
      return std::to_string(*AsInt());
  }
}

}  // namespace ggswarm::gguf
