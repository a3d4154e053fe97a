// Sizes as users write them on the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ggswarm {

// "4096", "512K", "10M", "1G" (also "B", "KiB", "MiB", "GiB"; k/m/g in lower case): bytes,
// in binary multiples. Nothing else: no sign, no spaces, no overflow.
std::optional<uint64_t> ParseByteSize(std::string_view s);

}  // namespace ggswarm
