// Bounds-checked little-endian reading of GGUF bytes. Every read checks the remaining length
// first; a failure throws ParseError carrying the byte offset, which the parsers turn into a
// Status at their boundary (exceptions never leave the gguf module).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "gguf/gguf_format.h"

namespace ggswarm::gguf {

struct ParseError {
  std::string message;
  uint64_t offset;
};

class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, uint64_t base_offset = 0)
      : data_(data), size_(size), base_(base_offset) {}

  uint64_t pos() const { return pos_; }
  uint64_t offset() const { return base_ + pos_; }  // position in the file, for messages
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  [[noreturn]] void Fail(const std::string& what) const { throw ParseError{what, offset()}; }

  void Need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      Fail(std::string(what) + " needs " + std::to_string(n) + " bytes but only " +
           std::to_string(remaining()) + " remain");
    }
  }
  template <class T>
  T Read(const char* what) {
    Need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view ReadString(const char* what) {
    const uint64_t len = Read<uint64_t>(what);
    if (len > remaining()) {
      pos_ -= 8;
      Fail(std::string(what) + " claims a length of " + std::to_string(len) + " bytes but only " +
           std::to_string(remaining() - 8) + " remain");
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }
  void Skip(uint64_t n, const char* what) {
    Need(n, what);
    pos_ += n;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t base_;
  uint64_t pos_ = 0;
};

// Reads one value of type `t` at the cursor; arrays are validated element by element and kept
// as raw bytes. `depth` counts array nesting.
struct Value;
Value ReadValue(Cursor& c, ValueType t, int depth);
ValueType ReadValueType(Cursor& c, const char* what);

}  // namespace ggswarm::gguf
