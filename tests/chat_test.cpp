// Chat templates: a model's tokenizer.chat_template is recognised by its markers (the
// templates' own snippets below, as they appear in real GGUF files), and turns are written
// exactly as the format says.
#include "runtime/chat.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "gguf/gguf_writer.h"

namespace ggswarm::runtime {
namespace {

gguf::GgufFile WithTemplate(const std::string* chat_template) {
  gguf::GgufWriter w;
  w.Set("general.architecture", gguf::Value::String("llama"));
  if (chat_template) w.Set("tokenizer.chat_template", gguf::Value::String(*chat_template));
  const std::string h = w.SerializeHeader();
  auto f = gguf::GgufFile::Parse({reinterpret_cast<const uint8_t*>(h.data()), h.size()});
  if (!f.ok()) throw std::runtime_error(f.status().ToString());  // fails the calling test
  return std::move(*f);
}

std::string Detect(const std::string& t) {
  auto f = ChatFormatFor(WithTemplate(&t));
  return f.ok() ? f->name : "error: " + f.status().message();
}

TEST(ChatTemplates, RecognisedByTheirMarkers) {
  EXPECT_EQ(Detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                   "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"),
            "chatml");
  EXPECT_EQ(Detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
                   "message['content'] | trim + '<|eot_id|>' }}"),
            "llama3");
  EXPECT_EQ(Detect("{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + "
                   "eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' "
                   "}}{% endif %}"),
            "zephyr");
  EXPECT_EQ(Detect("{{ bos_token + '[INST] ' + '<<SYS>>\\n' + system_message + '\\n<</SYS>>' }}"),
            "llama2");
  EXPECT_EQ(Detect("{{ '[INST] ' + message['content'] + ' [/INST]' }}"), "mistral");
  EXPECT_EQ(Detect("{{ '[SYSTEM_PROMPT]' + system + '[/SYSTEM_PROMPT]' }}{{ '[INST]' + "
                   "message['content'] + '[/INST]' }}"),
            "mistral-tekken");
  EXPECT_EQ(
      Detect("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
             "'<end_of_turn>\\n' }}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}"),
      "gemma");
  EXPECT_EQ(Detect("{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + "
                   "message['content'] + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt "
                   "%}{{ '<|assistant|>\\n' }}{% endif %}"),
            "phi3");
  EXPECT_NE(Detect("{{ '<|turn|>' + message['content'] }}").find("not one ggswarm knows"),
            std::string::npos);
}

TEST(ChatTemplates, MissingTemplateAndNamedFormats) {
  auto none = ChatFormatFor(WithTemplate(nullptr));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  EXPECT_NE(none.status().message().find("--chat-template"), std::string::npos);
  auto named = ChatFormatFor(WithTemplate(nullptr), "chatml");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(RenderFirstTurn(*named, "Be brief.", "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(RenderNextTurn(*named, "More"),
            "<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n");
  // Gemma's and Phi-3's turns as llama.cpp writes them (llm_chat_apply_template).
  auto gemma = ChatFormatFor(WithTemplate(nullptr), "gemma");
  ASSERT_TRUE(gemma.ok());
  EXPECT_EQ(RenderFirstTurn(*gemma, "Be brief.", "Hi"),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(RenderNextTurn(*gemma, "More"),
            "<end_of_turn>\n<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n");
  auto phi = ChatFormatFor(WithTemplate(nullptr), "phi3");
  ASSERT_TRUE(phi.ok());
  EXPECT_EQ(RenderFirstTurn(*phi, "", "Hi"), "<|user|>\nHi<|end|>\n<|assistant|>\n");
  EXPECT_EQ(RenderNextTurn(*phi, "More"), "<|end|>\n<|user|>\nMore<|end|>\n<|assistant|>\n");
  auto unknown = ChatFormatFor(WithTemplate(nullptr), "nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown chat template 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace ggswarm::runtime
