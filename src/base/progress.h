// Progress of a long operation, reported by the library and drawn (or not) by the caller.
#pragma once

#include <cstdint>
#include <functional>

namespace ggswarm {

// Called with bytes done so far and the total; may be called from several threads at once,
// so an implementation must be thread-safe. An empty function reports nothing.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

}  // namespace ggswarm
