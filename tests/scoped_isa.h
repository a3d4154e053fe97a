// Switches the kernels to another instruction set for as long as it lives, and back to the
// one active before when it goes — also when a failed ASSERT leaves the test early.
#pragma once

#include "kernels/kernels.h"

namespace ggswarm::testing {

class ScopedIsa {
 public:
  explicit ScopedIsa(kernels::Isa isa) : was_(kernels::Active()) { kernels::SetIsa(isa); }
  ~ScopedIsa() { kernels::SetIsa(was_); }
  ScopedIsa(const ScopedIsa&) = delete;
  // Whether the CPU has the set asked for (SetIsa gives the best one at or below it).
  bool has(kernels::Isa isa) const { return kernels::Active() == isa; }

 private:
  kernels::Isa was_;
};

}  // namespace ggswarm::testing
