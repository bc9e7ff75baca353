// Chat formats: a prompt wrapped as one user message the way a model's chat template renders it, for
// the named formats only (no general Jinja engine): ChatML (SmolLM2: <|im_start|>role\n...<|im_end|>\n,
// with the template's default system message when none is given) and Llama-2-chat
// (<s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]). `none` is the raw text, as LLaRA feeds base
// Llama-2. Each is checked token for token against transformers' apply_chat_template.
#pragma once
#include <optional>
#include <string>

#include "sbtrec/common/config_io.h"
#include "sbtrec/llm/tokenizer.h"

namespace sbtrec::llm {

enum class ChatFormat { kAuto, kNone, kChatML, kLlama2Chat };
inline const config::Choices<ChatFormat>& chat_formats() {
  static const config::Choices<ChatFormat> c = {{"auto", ChatFormat::kAuto},
                                                {"none", ChatFormat::kNone},
                                                {"chatml", ChatFormat::kChatML},
                                                {"llama2-chat", ChatFormat::kLlama2Chat}};
  return c;
}

// A resolved format and, for ChatML, the system message the template inserts when the conversation
// does not start with one ("" when it inserts none).
struct ChatTemplate {
  ChatFormat format = ChatFormat::kNone;
  std::string default_system;
};

// The model's chat template (Jinja source): GGUF metadata `tokenizer.chat_template`, or a Hugging
// Face directory's chat_template.jinja / tokenizer_config.json "chat_template"; "" when it has none.
std::string read_chat_template(const std::string& model_path);
// Which named format a Jinja chat template is: ChatML when it emits <|im_start|>, Llama-2-chat when it
// emits [INST], none when empty. Throws ConfigError for a template of another kind.
ChatTemplate detect_chat_template(const std::string& jinja, const std::string& source);
// `requested` resolved against the model: auto = the model's own format (none without a template);
// chatml takes its default system message from the model's template when that is ChatML.
ChatTemplate resolve_chat_format(ChatFormat requested, const std::string& model_path);

// `user` as one user message followed by the assistant's turn, as apply_chat_template(...,
// add_generation_prompt=True, tokenize=False) renders it. `system` replaces the default system
// message. The result is tokenized with special-token strings matched and no BOS added (the Llama-2
// format writes its own "<s>").
std::string apply_chat_format(const ChatTemplate& t, const std::string& user, const std::optional<std::string>& system = {});

// The ids the model reads for `user`: apply_chat_format's text without an added BOS for a chat format,
// the raw text with BOS for none (LLaRA: add_special_tokens=True). sbtrec-lm and the prompt builder
// both encode prompts through it.
std::vector<int64_t> encode_prompt(const Tokenizer& tokenizer, const ChatTemplate& t, const std::string& user,
                                   const std::optional<std::string>& system = {});

// The assistant's answer as the format renders it after the generation prompt, up to and including
// its end of turn: content + "\n" for none (LLaRA's terminator), content + "<|im_end|>" for ChatML,
// " " + content + " </s>" for Llama-2-chat.
std::string assistant_turn(const ChatTemplate& t, const std::string& content);

}  // namespace sbtrec::llm
