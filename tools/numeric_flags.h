// A CLI11 check from a runtime::Limit: a value outside the range (NaN included) is a usage
// error (exit 2) that names the option and the range, e.g.
//   --temp: must be a number from 0 to 100, not -1
#pragma once

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "runtime/limits.h"

namespace ggswarm::cli {

inline CLI::Validator Within(const runtime::Limit& l) {
  return CLI::Validator(
      [l](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size())
          return "'" + text + "' is not a number";
        return runtime::OutOfLimit(l, v);
      },
      "", "");
}

}  // namespace ggswarm::cli
