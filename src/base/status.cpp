#include "base/status.h"

namespace ggswarm {

std::string Status::ToString() const {
  const char* kind = "";
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      kind = "invalid argument";
      break;
    case Code::kNotFound:
      kind = "not found";
      break;
    case Code::kCorruption:
      kind = "corrupt";
      break;
    case Code::kIOError:
      kind = "I/O error";
      break;
    case Code::kUnsupported:
      kind = "unsupported";
      break;
    case Code::kExists:
      kind = "already exists";
      break;
    case Code::kUnavailable:
      kind = "unavailable";
      break;
  }
  return std::string(kind) + ": " + message_;
}

}  // namespace ggswarm
