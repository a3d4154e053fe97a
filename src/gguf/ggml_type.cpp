#include "gguf/ggml_type.h"

#include <cctype>
#include <iterator>

namespace ggswarm {
namespace {

// Block layouts are spelled out in quant/blocks.h.
constexpr TypeTraits kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, true, true},
    {GgmlType::F16, "F16", 1, 2, true, true},
    {GgmlType::Q4_0, "Q4_0", 32, 18, true, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true, true},
    {GgmlType::Q5_0, "Q5_0", 32, 22, true, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true, true},
    {GgmlType::Q8_0, "Q8_0", 32, 34, true, true},
    {GgmlType::Q8_1, "Q8_1", 32, 36, false, false},
    {GgmlType::Q2_K, "Q2_K", 256, 84, true, true},
    {GgmlType::Q3_K, "Q3_K", 256, 110, true, true},
    {GgmlType::Q4_K, "Q4_K", 256, 144, true, true},
    {GgmlType::Q5_K, "Q5_K", 256, 176, true, true},
    {GgmlType::Q6_K, "Q6_K", 256, 210, true, true},
    {GgmlType::Q8_K, "Q8_K", 256, 292, true, true},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, false, false},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, false, false},
    {GgmlType::I8, "I8", 1, 1, false, false},
    {GgmlType::I16, "I16", 1, 2, false, false},
    {GgmlType::I32, "I32", 1, 4, false, false},
    {GgmlType::I64, "I64", 1, 8, false, false},
    {GgmlType::F64, "F64", 1, 8, false, false},
    {GgmlType::BF16, "BF16", 1, 2, true, true},
};

// ggml's type ids whose block layout ggswarm does not implement (llama.cpp's ggml.h; 31-33
// and 36-38 were repacked CPU layouts, removed upstream, never stored in files).
constexpr struct {
  uint32_t id;
  const char* name;
} kUnsupported[] = {{16, "IQ2_XXS"},    {17, "IQ2_XS"},     {18, "IQ3_XXS"},    {19, "IQ1_S"},
                    {21, "IQ3_S"},      {22, "IQ2_S"},      {29, "IQ1_M"},      {31, "Q4_0_4_4"},
                    {32, "Q4_0_4_8"},   {33, "Q4_0_8_8"},   {34, "TQ1_0"},      {35, "TQ2_0"},
                    {36, "IQ4_NL_4_4"}, {37, "IQ4_NL_4_8"}, {38, "IQ4_NL_8_8"}, {39, "MXFP4"}};

}  // namespace

const char* UnsupportedTypeName(uint32_t id) {
  for (const auto& t : kUnsupported)
    if (t.id == id) return t.name;
  return nullptr;
}

const TypeTraits* FindType(uint32_t id) {
  for (const TypeTraits& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

const TypeTraits& Traits(GgmlType t) { return *FindType(static_cast<uint32_t>(t)); }

const char* TypeName(GgmlType t) { return Traits(t).name; }

std::optional<GgmlType> TypeFromName(std::string_view name) {
  for (const TypeTraits& t : kTypes) {
    std::string_view n = t.name;
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < n.size(); ++i) {
      same &= std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    }
    if (same) return t.type;
  }
  return std::nullopt;
}

}  // namespace ggswarm
