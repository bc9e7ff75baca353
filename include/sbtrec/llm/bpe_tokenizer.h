// Byte-level BPE (GPT-2 style: SmolLM2, GPT-2, Llama-3, Qwen2) giving the ids and text of Hugging Face
// tokenizers: added tokens cut out of the text first, the rest split by the pre-tokenizer's regular
// expressions, bytes spelled in GPT-2's printable alphabet, pairs merged by rank; decoding spells back.
// One plain struct (BpeVocabulary) is filled from a tokenizer.json here or from GGUF metadata.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sbtrec/llm/tokenizer.h"

namespace sbtrec::llm {

// An entry of tokenizer.json's "added_tokens": matched whole in the text before pre-tokenization.
struct BpeAddedToken {
  std::string content;
  int64_t id = -1;
  bool special = true;    // dropped by decode(ids, skip_special_tokens = true)
  bool normalized = false;  // tokenizers matches normalized=false tokens first, then the others
  bool lstrip = false, rstrip = false;  // the match also takes the whitespace on its left / right
};

// GPT-2's regex, the one ByteLevel(use_regex=true) splits with.
extern const char* const kGpt2PreTokenizerPattern;

struct BpeVocabulary {
  std::vector<std::string> tokens;  // id -> token in the byte-level alphabet ("Ġthe"); "" for an unused id
  std::vector<std::string> merges;  // rank order, each "left right"
  // GGUF token types per id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte); empty
  // for a tokenizer.json. Given, the vocabulary is read as transformers reads a GGUF: a token spelled
  // outside the byte-level alphabet is respelled from its UTF-8 bytes; control tokens become special
  // added tokens and user-defined ones plain added tokens (unless added_tokens lists their id).
  std::vector<int32_t> token_types;
  std::vector<BpeAddedToken> added_tokens;
  // "gpt2": ByteLevel's regex (tokenizer.json's ByteLevel(use_regex=true), and what transformers uses
  // for a GGUF whose tokenizer.ggml.pre it has no split for, "smollm" included); "smollm": every digit
  // alone, then gpt2 (SmolLM's own tokenizer.json, llama.cpp's "smollm"); "custom": the pre_split
  // regexes in order, then ByteLevel's regex if byte_level_regex.
  std::string pre_tokenizer = "gpt2";
  std::vector<std::string> pre_split;  // "custom": Split(Regex, behavior Isolated) patterns, e.g. Llama-3's
  bool byte_level_regex = true;        // "custom": ByteLevel(use_regex)
  bool add_prefix_space = false;       // ByteLevel(add_prefix_space): " " before a piece not starting with one
  bool ignore_merges = false;          // BPE(ignore_merges): a word in the vocabulary is one token
  int64_t bos_id = -1, eos_id = -1, pad_id = -1;
  // The BPE model's unk token, emitted for a byte the vocabulary lacks; -1 drops such a byte, as
  // tokenizers does with "unk_token": null (which transformers also builds from a GGUF, whatever its
  // tokenizer.ggml.unknown_token_id: fill -1 there to match it).
  int64_t unk_id = -1;
  bool fuse_unk = false;
  bool add_bos = false, add_eos = false;  // what encode(text, add_special_tokens = true) adds
  std::string chat_template;              // Jinja, written to tokenizer_config.json
  std::string source;                     // file name for error messages
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  // Throws ConfigError naming vocabulary.source for a vocabulary that cannot work: no tokens, a merge
  // that is not "left right" or names a token the vocabulary lacks, an id out of range, a regex PCRE2
  // rejects, an unknown pre_tokenizer.
  explicit ByteLevelBpeTokenizer(BpeVocabulary vocabulary);
  ByteLevelBpeTokenizer(ByteLevelBpeTokenizer&&) noexcept;
  ByteLevelBpeTokenizer& operator=(ByteLevelBpeTokenizer&&) noexcept;
  ~ByteLevelBpeTokenizer() override;

  // A Hugging Face tokenizer.json, with the tokenizer_config.json (bos/eos/pad/unk tokens,
  // add_bos_token / add_eos_token, chat_template) and chat_template.jinja beside it when present.
  // Throws ConfigError naming the file and the field for anything but byte-level BPE without a
  // normalizer: other models or decoders, normalizers, unknown pre-tokenizers, byte_fallback, dropout.
  static ByteLevelBpeTokenizer from_tokenizer_json(const std::string& path);

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const override;

  int64_t bos_id() const override;
  int64_t eos_id() const override;
  int64_t pad_id() const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  // As transformers' add_special_tokens: a token already in the vocabulary keeps its id.
  std::vector<int64_t> add_special_tokens(const std::vector<std::string>& tokens) override;
  std::vector<int64_t> added_token_ids() const override;
  std::vector<int64_t> newline_ids() const override;

  // The vocabulary this tokenizer runs, with the tokens add_special_tokens added (what convert writes).
  const BpeVocabulary& vocabulary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a tokenizer.json (see ByteLevelBpeTokenizer::from_tokenizer_json) without building a tokenizer.
BpeVocabulary read_tokenizer_json(const std::string& path);

// Writes dir/tokenizer.json and dir/tokenizer_config.json (each atomically; dir is created), which
// transformers' AutoTokenizer.from_pretrained(dir) loads and tokenizes with as ByteLevelBpeTokenizer
// does. Throws ConfigError for a vocabulary the constructor would refuse.
void write_tokenizer_json(const BpeVocabulary& vocabulary, const std::string& dir);

// GPT-2's byte -> printable character spelling of `bytes` (" the" -> "Ġthe").
std::string to_byte_level(const std::string& bytes);

}  // namespace sbtrec::llm
