#include "fragments/naming.h"

#include <cctype>

#include "gguf/tensor_name.h"

namespace ggswarm::fragments {
namespace {

bool SafeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

}  // namespace

TensorRole RoleOf(std::string_view name) {
  TensorRole r;
  r.layer = gguf::LayerOf(name);
  std::string_view rest = name;
  if (r.layer >= 0) rest = rest.substr(rest.find('.', 4) + 1);
  if (EndsWith(rest, ".weight")) rest.remove_suffix(7);
  std::string comp(rest);
  for (char& c : comp) c = (c == '.') ? '_' : (SafeChar(c) ? c : '-');
  r.component = comp.empty() ? "tensor" : comp;
  if (StartsWith(comp, "token_embd")) {
    r.kind = "embedding";
  } else if (EndsWith(comp, "norm")) {
    r.kind = "norm";
  } else if (StartsWith(comp, "attn")) {
    r.kind = "attention";
  } else if (StartsWith(comp, "ffn")) {
    r.kind = "feed_forward";
  } else if (StartsWith(comp, "output")) {
    r.kind = "output";
  } else {
    r.kind = "other";
  }
  return r;
}

std::string FragmentFileName(const std::string& model, const TensorRole& role, int shard,
                             const std::string& sha) {
  std::string s = model + "_";
  if (role.layer >= 0) s += "L" + std::to_string(role.layer) + "_";
  return s + role.component + "_S" + std::to_string(shard) + "_" + sha.substr(0, 16) + ".dat";
}

std::string SanitizeName(std::string_view name) {
  std::string s;
  for (char c : name) s += SafeChar(c) ? c : '_';
  if (s.empty() || s[0] == '.') s.insert(s.begin(), 'm');
  return s;
}

bool IsSafeFileName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    if (!SafeChar(c)) return false;
  }
  return true;
}

}  // namespace ggswarm::fragments
