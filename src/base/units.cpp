#include "base/units.h"

#include <charconv>

namespace ggswarm {

std::optional<uint64_t> ParseByteSize(std::string_view s) {
  uint64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  const std::string_view unit(p, static_cast<size_t>(end - p));
  uint64_t mul = 0;
  if (unit.empty() || unit == "B")
    mul = 1;
  else if (unit == "K" || unit == "k" || unit == "KiB")
    mul = 1ull << 10;
  else if (unit == "M" || unit == "m" || unit == "MiB")
    mul = 1ull << 20;
  else if (unit == "G" || unit == "g" || unit == "GiB")
    mul = 1ull << 30;
  if (mul == 0 || v > UINT64_MAX / mul) return std::nullopt;
  return v * mul;
}

}  // namespace ggswarm
