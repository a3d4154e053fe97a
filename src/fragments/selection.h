// Which fragments of a model a partial copy holds on purpose: a range of layers, plus the
// embedding and the output head when asked. `ggswarm fetch --layers A-B` writes it to
// selection.json beside the manifest, and `ggswarm verify` then reports the fragments
// outside it as deliberately absent, not as missing.
//   selection.json: {"schema": "ggswarm.selection", "layers": [A, B] or null (all layers),
//                    "embedding": bool, "head": bool}
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "fragments/manifest.h"

namespace ggswarm::fragments {

constexpr const char* kSelectionFile = "selection.json";

struct Selection {
  bool all = true;                      // every fragment, gaps included (a full copy)
  int first_layer = 0, last_layer = 0;  // inclusive; meaningful when !all
  bool embedding = false;               // token_embd (and the head when it is tied to it)
  bool head = false;                    // output and output_norm

  // "0-7", "5" or "" (all); A ≤ B, both ≥ 0. The layers are checked against a model
  // later, by Check().
  static StatusOr<Selection> Parse(const std::string& layers, bool embedding, bool head);
  // The layer range exists in the model.
  Status Check(const Manifest& m) const;
  bool Wants(const FragmentEntry& f, const Manifest& m) const;
  std::string Describe() const;  // "all", "layers 0-7 + embedding + head"

  nlohmann::json ToJson() const;
  static StatusOr<Selection> FromJson(const std::string& text);
};

// Writes selection.json (atomically); a full selection removes it instead.
Status SaveSelection(const std::string& dir, const Selection& s);
// The directory's selection.json, or nullopt when there is none (a full copy).
StatusOr<std::optional<Selection>> LoadSelection(const std::string& dir);

}  // namespace ggswarm::fragments
