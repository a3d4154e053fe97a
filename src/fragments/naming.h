// How a tensor's name becomes a fragment's kind, layer, component and file name:
//   blk.12.attn_q.weight, shard 0  →  {model}_L12_attn_q_S0_{sha16}.dat   (kind "attention")
//   token_embd.weight,    shard 3  →  {model}_token_embd_S3_{sha16}.dat   (kind "embedding")
#pragma once

#include <string>
#include <string_view>

namespace ggswarm::fragments {

struct TensorRole {
  std::string kind;       // embedding, attention, feed_forward, norm, output, other
  int layer = -1;         // -1 outside the layer stack
  std::string component;  // attn_q, ffn_down, token_embd, … (bias tensors: attn_q_bias)
};

TensorRole RoleOf(std::string_view tensor_name);
std::string FragmentFileName(const std::string& model, const TensorRole& role, int shard,
                             const std::string& sha256_hex);
// A model name safe inside file names: letters, digits, '.', '-', '_' (others become '_').
std::string SanitizeName(std::string_view name);
// True for a plain file name: no directory parts, not hidden, only safe characters.
bool IsSafeFileName(std::string_view name);

}  // namespace ggswarm::fragments
