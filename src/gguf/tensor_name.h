// Conventions of llama.cpp's tensor names ("blk.N.attn_q.weight").
#pragma once

#include <charconv>
#include <string_view>

namespace ggswarm::gguf {

// Layer index of "blk.N.…" names, or -1 for tensors outside the layer stack.
inline int LayerOf(std::string_view n) {
  if (n.substr(0, 4) != "blk.") return -1;
  int layer = -1;
  auto [p, ec] = std::from_chars(n.data() + 4, n.data() + n.size(), layer);
  return (ec == std::errc() && layer >= 0 && p < n.data() + n.size() && *p == '.') ? layer : -1;
}

}  // namespace ggswarm::gguf
