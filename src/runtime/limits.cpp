#include "runtime/limits.h"

#include <cmath>
#include <cstdio>

namespace ggswarm::runtime {
namespace {

std::string Number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.10g", v);
  return b;
}

}  // namespace

std::string OutOfLimit(const Limit& l, double v) {
  const bool low = l.min_exclusive ? !(v > l.min) : !(v >= l.min);
  if (!std::isnan(v) && !low && v <= l.max) return "";
  return std::string("must be a number ") + (l.min_exclusive ? "above " : "from ") + Number(l.min) +
         (l.min_exclusive ? " up to " : " to ") + Number(l.max) + ", not " + Number(v);
}

}  // namespace ggswarm::runtime
