// Text that leaves the program as JSON: UTF-8 checks and a JSON writer that never throws.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ggswarm {

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, ≤ U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `j` as JSON text (indent < 0: one line). Bytes that are not UTF-8 in its strings become
// U+FFFD instead of an exception: for output shown to people (inspect, bench, HTTP replies);
// files that must round-trip (manifests) check their strings with IsValidUtf8 first.
std::string JsonText(const nlohmann::json& j, int indent = -1);

}  // namespace ggswarm
