// Chat formats: how a conversation is written as one prompt for a model trained on it.
// The model's `tokenizer.chat_template` (Jinja) is recognised by its markers and mapped to
// one of the formats llama.cpp also hard-codes; other templates are refused by name.
#pragma once

#include <string>

#include "base/status.h"
#include "gguf/gguf_file.h"

namespace ggswarm::runtime {

struct ChatFormat {
  std::string name;
  // With {system} and {user} filled in; the first turn of a conversation.
  std::string first_with_system, first_without_system;
  std::string next_turn;        // every later user turn, with {user}
  std::string after_assistant;  // what closes the assistant's reply before the next turn
};

// The format for this model: `name` when given (see ChatFormatNames), else recognised from
// tokenizer.chat_template. An error says when there is none or it is not recognised.
StatusOr<ChatFormat> ChatFormatFor(const gguf::GgufFile& f, const std::string& name = "");
std::string ChatFormatNames();

std::string RenderFirstTurn(const ChatFormat& f, const std::string& system,
                            const std::string& user);
// The text after the assistant's reply: its closing marker and the next user turn.
std::string RenderNextTurn(const ChatFormat& f, const std::string& user);

}  // namespace ggswarm::runtime
