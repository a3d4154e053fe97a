#include "runtime/chat.h"

#include <vector>

namespace ggswarm::runtime {
namespace {

// The BOS token is added by the tokenizer (add_bos_token); later turns that repeat it write
// it as text, which the tokenizer turns back into the token.
const std::vector<ChatFormat>& Formats() {
  static const std::vector<ChatFormat> f = {
      {"zephyr", "<|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n",
       "<|user|>\n{user}</s>\n<|assistant|>\n", "<|user|>\n{user}</s>\n<|assistant|>\n", "</s>\n"},
      {"chatml",
       "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
       "<|im_start|>assistant\n",
       "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
       "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n"},
      {"llama2", "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]", "[INST] {user} [/INST]",
       "<s>[INST] {user} [/INST]", "</s>"},
      {"mistral", "[INST] {system}\n\n{user}[/INST]", "[INST] {user}[/INST]",
       "[INST] {user}[/INST]", "</s>"},
      {"mistral-tekken", "[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT][INST]{user}[/INST]",
       "[INST]{user}[/INST]", "[INST]{user}[/INST]", "</s>"},
      {"llama3",
       "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n",
       "<|eot_id|>"},
      // Gemma has no system role: llama.cpp puts the system prompt before the first user
      // message, a blank line apart; the assistant is "model".
      {"gemma", "<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n",
       "<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n",
       "<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n", "<end_of_turn>\n"},
      {"phi3", "<|system|>\n{system}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n",
       "<|user|>\n{user}<|end|>\n<|assistant|>\n", "<|user|>\n{user}<|end|>\n<|assistant|>\n",
       "<|end|>\n"},
  };
  return f;
}

const ChatFormat* ByName(const std::string& n) {
  for (const ChatFormat& f : Formats())
    if (f.name == n) return &f;
  return nullptr;
}

bool Has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Fills {system} and {user} in one pass, so that text containing "{user}" stays as written.
std::string Fill(const std::string& t, const std::string& system, const std::string& user) {
  std::string out;
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, 8, "{system}") == 0) {
      out += system;
      i += 8;
    } else if (t.compare(i, 6, "{user}") == 0) {
      out += user;
      i += 6;
    } else {
      out += t[i++];
    }
  }
  return out;
}

}  // namespace

std::string ChatFormatNames() {
  std::string s;
  for (const ChatFormat& f : Formats()) s += (s.empty() ? "" : ", ") + f.name;
  return s;
}

StatusOr<ChatFormat> ChatFormatFor(const gguf::GgufFile& f, const std::string& name) {
  if (!name.empty()) {
    if (const ChatFormat* c = ByName(name)) return *c;
    return Status::InvalidArgument("unknown chat template '" + name + "' (one of " +
                                   ChatFormatNames() + ")");
  }
  auto t = f.GetString("tokenizer.chat_template");
  if (!t)
    return Status::NotFound(
        "the model has no chat template (tokenizer.chat_template); name one with "
        "--chat-template (" +
        ChatFormatNames() + ")");
  const char* n = nullptr;
  if (Has(*t, "<|im_start|>"))
    n = "chatml";
  else if (Has(*t, "<|start_header_id|>"))
    n = "llama3";
  else if (Has(*t, "<start_of_turn>"))
    n = "gemma";
  else if (Has(*t, "<|assistant|>") && Has(*t, "<|end|>"))
    n = "phi3";
  else if (Has(*t, "<|user|>") && Has(*t, "<|assistant|>"))
    n = "zephyr";
  else if (Has(*t, "[SYSTEM_PROMPT]") || (Has(*t, "[INST]") && !Has(*t, "[INST] ")))
    n = "mistral-tekken";
  else if (Has(*t, "<<SYS>>"))
    n = "llama2";
  else if (Has(*t, "[INST]"))
    n = "mistral";
  if (!n)
    return Status::Unsupported("the model's chat template is not one ggswarm knows (" +
                               ChatFormatNames() + "); choose one with --chat-template");
  return *ByName(n);
}

std::string RenderFirstTurn(const ChatFormat& f, const std::string& system,
                            const std::string& user) {
  return Fill(system.empty() ? f.first_without_system : f.first_with_system, system, user);
}

std::string RenderNextTurn(const ChatFormat& f, const std::string& user) {
  return f.after_assistant + Fill(f.next_turn, "", user);
}

}  // namespace ggswarm::runtime
