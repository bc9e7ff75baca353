// Tokenizers: one interface (Tokenizer) over Llama-2's SentencePiece tokenizer (SentencePieceTokenizer,
// below) and byte-level BPE from a Hugging Face tokenizer.json (ByteLevelBpeTokenizer, bpe_tokenizer.h),
// each giving the ids and text transformers gives. load_tokenizer picks one from a model directory.
//
// SentencePieceTokenizer, Mode::kTransformers (the default), is transformers' Llama tokenizer: BOS
// prepended, no EOS; special-token strings ("<s>", "</s>", "<unk>", added tokens) matched in the text;
// spaces -> "▁" with one "▁" prepended to the first section unless it starts with a space; byte-pair
// merges over the whole section, ranked as transformers derives them from tokenizer.model (by piece
// id); byte fallback (<0xXX>) for characters outside the vocabulary. Decoding drops special tokens,
// turns "▁" into spaces, reassembles bytes as UTF-8 and strips one leading space.
// Mode::kSentencePiece encodes with libsentencepiece itself (what Meta's reference and llama2.c do);
// the two differ only on runs of spaces and a leading space.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sbtrec::llm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // With add_special_tokens, what this tokenizer's configuration adds around the text (transformers'
  // add_special_tokens=True): BOS for Llama-2, nothing for SmolLM2.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const = 0;
  // Throws Error for an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const = 0;

  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t pad_id() const = 0;  // -1 when the tokenizer has none
  virtual int64_t vocab_size() const = 0;  // every id, added tokens included
  // The id of a token spelled as the vocabulary spells it ("<|im_start|>", "▁the", "Ġthe"), added
  // tokens included; nullopt when there is none.
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;

  // Adds special tokens (e.g. "[HistoryEmb]"), matched whole in text, with ids vocab_size(),
  // vocab_size() + 1, ...; a token added before keeps its id.
  // Prefer llm::add_special_tokens (special_tokens.h), which grows the model's embedding with it.
  virtual std::vector<int64_t> add_special_tokens(const std::vector<std::string>& tokens) = 0;
  virtual std::vector<int64_t> added_token_ids() const = 0;  // ids of the tokens added so far, in order
  // Ids whose decoded text contains a newline: "stop at end of line".
  virtual std::vector<int64_t> newline_ids() const = 0;
};

// A GGUF file (its tokenizer.ggml.* metadata: byte-level BPE), "default" (llm::resolve_model), a model
// directory holding tokenizer.model (SentencePiece, Mode::kTransformers) or tokenizer.json
// (byte-level BPE), or one of those files itself (*.model, *.json). A directory with both is
// SentencePiece: Llama directories carry a tokenizer.json of SentencePiece-style BPE beside their
// tokenizer.model. Throws ConfigError saying what it looked for.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model);

class SentencePieceTokenizer : public Tokenizer {
 public:
  enum class Mode { kTransformers, kSentencePiece };
  // Throws ConfigError naming the file if it is missing or not a SentencePiece model.
  explicit SentencePieceTokenizer(const std::string& model_path, Mode mode = Mode::kTransformers);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const override;

  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  int64_t vocab_size() const override;  // SentencePiece pieces + added tokens
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::vector<int64_t> add_special_tokens(const std::vector<std::string>& tokens) override;
  std::vector<int64_t> added_token_ids() const override;
  // Ids whose piece contains a newline (byte <0x0A> or a piece with '\n').
  std::vector<int64_t> newline_ids() const override;

 private:
  struct Merge {
    int32_t rank, result;
  };
  void build_merges();
  void encode_section(const std::string& text, bool first, std::vector<int64_t>& out) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  Mode mode_;
  std::vector<std::string> added_;
  std::vector<std::pair<std::string, int64_t>> specials_;  // text -> id, matched in encode
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  int32_t byte_ids_[256];
  int64_t bos_ = 1, eos_ = 2, unk_ = 0, pad_ = -1;
};

}  // namespace sbtrec::llm
