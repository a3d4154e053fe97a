// Reading the server's event streams in tests: the text a stream of OpenAI chunks carries.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ggswarm::testing {

// The text of a server-sent-event stream of chunks; *finish and *usage from the last.
inline std::string StreamText(const std::string& body, bool chat, std::string* finish = nullptr,
                              nlohmann::json* usage = nullptr, bool* done = nullptr) {
  std::string text;
  size_t at = 0;
  if (done) *done = false;
  while (at < body.size()) {
    size_t end = body.find("\n\n", at);
    if (end == std::string::npos) break;
    const std::string ev = body.substr(at, end - at);
    at = end + 2;
    if (ev.rfind("data: ", 0) != 0) continue;
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    const nlohmann::json j = nlohmann::json::parse(data);
    if (!j.contains("choices")) {  // an error event: shown in the text, which then differs
      text += "[" + j.dump() + "]";
      continue;
    }
    const nlohmann::json& ch = j["choices"][0];
    if (chat && ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!chat) text += ch["text"].get<std::string>();
    if (finish && !ch["finish_reason"].is_null()) *finish = ch["finish_reason"];
    if (usage && j.contains("usage")) *usage = j["usage"];
  }
  return text;
}

}  // namespace ggswarm::testing
