// Re-types a GGUF model, in the manner of llama-quantize: every matrix to the mix's type,
// norms to F32, fallbacks where rows do not fit, metadata kept (general.file_type updated).
#pragma once

#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "convert/type_plan.h"

namespace ggswarm {

struct QuantizeReport {
  uint64_t in_size = 0, out_size = 0;
  std::vector<std::string> notes;  // fallbacks, one line each
};

StatusOr<QuantizeReport> QuantizeModel(const std::string& in_path, const std::string& out_path,
                                       const TypeMix& mix, bool overwrite,
                                       const ProgressFn& progress = {});

}  // namespace ggswarm
