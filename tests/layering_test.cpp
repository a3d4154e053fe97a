// The module graph of docs/design.md, enforced: a folder of src/ includes only the folders
// this table allows, so dependencies run one way (no cycles, nothing reaching up).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::set<std::string>> kAllowed = {
    {"base", {}},
    {"gguf", {"base"}},  // the file format, and its table of ggml types
    {"quant", {"base", "gguf"}},
    {"kernels", {"base", "gguf", "quant"}},
    {"tokenizer", {"base", "gguf"}},
    {"fragments", {"base", "gguf"}},
    {"convert", {"base", "gguf", "quant", "tokenizer", "model"}},
    {"model", {"base", "gguf", "quant", "kernels"}},
    {"runtime", {"base", "gguf", "quant", "kernels", "model", "tokenizer", "fragments"}},
    {"net", {"base", "gguf", "fragments", "model", "tokenizer"}},
    {"api",
     {"base", "gguf", "quant", "kernels", "model", "tokenizer", "fragments", "runtime", "net"}},
};

TEST(Layering, EveryIncludeGoesDownTheModuleGraph) {
  const fs::path src = fs::path(GGSWARM_SOURCE_DIR) / "src";
  const std::regex include_re(R"re(^\s*#\s*include\s+"([a-z_]+)/)re");
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    if (!e.is_regular_file()) continue;
    const std::string module = fs::relative(e.path(), src).begin()->string();
    const auto allowed = kAllowed.find(module);
    ASSERT_NE(allowed, kAllowed.end()) << "src/" << module << " is not in the module graph";
    std::ifstream in(e.path());
    std::string line;
    std::smatch m;
    for (int n = 1; std::getline(in, line); ++n) {
      if (!std::regex_search(line, m, include_re)) continue;
      const std::string to = m[1];
      EXPECT_TRUE(to == module || allowed->second.count(to))
          << e.path().string() << ":" << n << ": " << module << " may not include " << to;
    }
    files++;
  }
  EXPECT_GT(files, 50);
}

}  // namespace
