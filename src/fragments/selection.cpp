#include "fragments/selection.h"

#include <unistd.h>

#include <charconv>

#include "base/file.h"
#include "base/text.h"

namespace ggswarm::fragments {
namespace {

constexpr const char* kSelectionSchema = "ggswarm.selection";
constexpr int kMaxLayer = 1 << 20;  // far beyond any model; keeps the arithmetic small

std::optional<int> ParseLayer(std::string_view s) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > kMaxLayer) return {};
  return v;
}

bool HasOutputTensor(const Manifest& m) {
  for (const FragmentEntry& f : m.fragments) {
    if (f.kind == "output") return true;
  }
  return false;
}

}  // namespace

StatusOr<Selection> Selection::Parse(const std::string& layers, bool embedding, bool head) {
  Selection s;
  s.embedding = embedding;
  s.head = head;
  if (layers.empty()) {
    if (embedding || head)
      return Status::InvalidArgument(
          "--with-embedding and --with-head add to a --layers range; without one every "
          "fragment is fetched");
    return s;
  }
  const size_t dash = layers.find('-');
  auto a = ParseLayer(std::string_view(layers).substr(0, dash));
  auto b = dash == std::string::npos ? a : ParseLayer(std::string_view(layers).substr(dash + 1));
  if (!a || !b || *a > *b)
    return Status::InvalidArgument("--layers " + layers +
                                   ": expected a layer range like 0-7 or one layer like 5");
  s.all = false;
  s.first_layer = *a;
  s.last_layer = *b;
  return s;
}

Status Selection::Check(const Manifest& m) const {
  if (all) return Status::Ok();
  int n_layers = 0;
  for (const FragmentEntry& f : m.fragments) n_layers = std::max(n_layers, f.layer + 1);
  if (last_layer >= n_layers)
    return Status::InvalidArgument("layers " + std::to_string(first_layer) + "-" +
                                   std::to_string(last_layer) + " are not all in " + m.name +
                                   ", which has layers 0-" + std::to_string(n_layers - 1));
  return Status::Ok();
}

bool Selection::Wants(const FragmentEntry& f, const Manifest& m) const {
  if (all) return true;
  if (f.layer >= 0) return f.layer >= first_layer && f.layer <= last_layer;
  if (f.kind == "gap") return false;  // padding: only a reassembly needs it
  if (f.kind == "embedding") return embedding || (head && !HasOutputTensor(m));
  if (f.kind == "output" || f.kind == "norm") return head;
  return true;  // small tensors outside the layers (rope_freqs, …) that every stage uses
}

std::string Selection::Describe() const {
  if (all) return "all";
  std::string s = "layers " + std::to_string(first_layer) + "-" + std::to_string(last_layer);
  if (embedding) s += " + embedding";
  if (head) s += " + head";
  return s;
}

nlohmann::json Selection::ToJson() const {
  nlohmann::json j;
  j["schema"] = kSelectionSchema;
  j["layers"] = all ? nlohmann::json(nullptr) : nlohmann::json::array({first_layer, last_layer});
  j["embedding"] = embedding;
  j["head"] = head;
  return j;
}

StatusOr<Selection> Selection::FromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& why) {
    return Status::Corruption(std::string(kSelectionFile) + ": " + why);
  };
  if (!j.is_object() || j.value("schema", "") != kSelectionSchema)
    return bad("not a ggswarm selection");
  if (!j.contains("embedding") || !j["embedding"].is_boolean() || !j.contains("head") ||
      !j["head"].is_boolean())
    return bad("'embedding' and 'head' must be true or false");
  Selection s;
  s.embedding = j["embedding"].get<bool>();
  s.head = j["head"].get<bool>();
  const auto& l = j["layers"];
  if (l.is_null()) return s;
  if (!l.is_array() || l.size() != 2 || !l[0].is_number_integer() || !l[1].is_number_integer())
    return bad("'layers' must be null or [first, last]");
  const int64_t a = l[0].get<int64_t>(), b = l[1].get<int64_t>();
  if (a < 0 || b < a || b > kMaxLayer) return bad("'layers' is not a range of layers");
  s.all = false;
  s.first_layer = static_cast<int>(a);
  s.last_layer = static_cast<int>(b);
  return s;
}

Status SaveSelection(const std::string& dir, const Selection& s) {
  const std::string path = dir + "/" + kSelectionFile;
  if (s.all) {
    ::unlink(path.c_str());
    return Status::Ok();
  }
  auto out = OutputFile::Create(path, /*overwrite=*/true);
  if (!out.ok()) return out.status();
  const std::string text = JsonText(s.ToJson(), 2) + "\n";
  GGSWARM_RETURN_IF_ERROR(out->Write({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return out->Commit();
}

StatusOr<std::optional<Selection>> LoadSelection(const std::string& dir) {
  const std::string path = dir + "/" + kSelectionFile;
  if (!PathExists(path)) return std::optional<Selection>();
  auto text = ReadSmallFile(path, 1 << 16);
  if (!text.ok()) return text.status();
  auto s = Selection::FromJson(*text);
  if (!s.ok()) return s.status();
  return std::optional<Selection>(*s);
}

}  // namespace ggswarm::fragments
