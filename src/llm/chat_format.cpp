// Named chat formats (see chat_format.h).
#include "sbtrec/llm/chat_format.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/text.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/llm/options.h"

namespace sbtrec::llm {

std::string read_chat_template(const std::string& model_path) {
  const std::string path = resolve_model(model_path);
  if (gguf::is_gguf_file(path)) {
    gguf::File f(path);
    return f.header().find_string("tokenizer.chat_template").value_or("");
  }
  if (path_exists(path + "/chat_template.jinja")) return read_file(path + "/chat_template.jinja");
  const std::string cfg = path + "/tokenizer_config.json";
  if (!path_exists(cfg)) return "";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg));
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(cfg + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.contains("chat_template") || j["chat_template"].is_null()) return "";
  if (!j["chat_template"].is_string())
    throw ConfigError(cfg + ": 'chat_template' must be a string (lists of named templates are not supported)");
  return j["chat_template"].get<std::string>();
}

ChatTemplate detect_chat_template(const std::string& jinja, const std::string& source) {
  ChatTemplate t;
  if (jinja.empty()) return t;
  if (jinja.find("<|im_start|>") != std::string::npos) {
    t.format = ChatFormat::kChatML;
    // The system turn the template writes as a literal when the first message is not a system one.
    const std::string open = "<|im_start|>system\n", close = "<|im_end|>";
    const auto b = jinja.find(open);
    if (b != std::string::npos) {
      const auto e = jinja.find(close, b + open.size());
      const std::string body = e == std::string::npos ? "" : jinja.substr(b + open.size(), e - b - open.size());
      // A literal message holds no Jinja syntax; a template that builds it from variables has no default.
      if (body.find("{") == std::string::npos && body.find("'") == std::string::npos) t.default_system = body;
    }
    return t;
  }
  if (jinja.find("[INST]") != std::string::npos) {
    t.format = ChatFormat::kLlama2Chat;
    return t;
  }
  throw ConfigError(source + ": the model's chat template is neither ChatML nor Llama-2-chat; pass the format "
                             "explicitly (chat_format: chatml | llama2-chat | none)");
}

ChatTemplate resolve_chat_format(ChatFormat requested, const std::string& model_path) {
  if (requested == ChatFormat::kNone) return {};
  if (requested == ChatFormat::kLlama2Chat) return {ChatFormat::kLlama2Chat, ""};
  const ChatTemplate own = detect_chat_template(read_chat_template(model_path), model_path);
  if (requested == ChatFormat::kAuto) return own;
  return {ChatFormat::kChatML, own.format == ChatFormat::kChatML ? own.default_system : ""};
}

std::string apply_chat_format(const ChatTemplate& t, const std::string& user, const std::optional<std::string>& system) {
  switch (t.format) {
    case ChatFormat::kNone:
    case ChatFormat::kAuto:
      return user;
    case ChatFormat::kChatML: {
      std::string out;
      const std::string sys = system ? *system : t.default_system;
      if (system || !t.default_system.empty()) out += "<|im_start|>system\n" + sys + "<|im_end|>\n";
      return out + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
    }
    case ChatFormat::kLlama2Chat: {
      const std::string content = system ? "<<SYS>>\n" + *system + "\n<</SYS>>\n\n" + user : user;
      return "<s>[INST] " + strip(content) + " [/INST]";
    }
  }
  return user;
}

std::vector<int64_t> encode_prompt(const Tokenizer& tokenizer, const ChatTemplate& t, const std::string& user,
                                   const std::optional<std::string>& system) {
  if (t.format == ChatFormat::kNone || t.format == ChatFormat::kAuto) return tokenizer.encode(user, true);
  return tokenizer.encode(apply_chat_format(t, user, system), false);
}

std::string assistant_turn(const ChatTemplate& t, const std::string& content) {
  switch (t.format) {
    case ChatFormat::kChatML: return content + "<|im_end|>";
    case ChatFormat::kLlama2Chat: return " " + strip(content) + " </s>";
    default: return content + "\n";
  }
}

}  // namespace sbtrec::llm
