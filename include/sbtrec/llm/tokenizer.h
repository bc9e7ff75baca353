// Llama-2's tokenizer from its SentencePiece tokenizer.model, giving the ids and text that
// transformers' Llama tokenizer gives (the default, Mode::kTransformers): BOS prepended, no EOS;
// special-token strings ("<s>", "</s>", "<unk>", added tokens) matched in the text; spaces -> "▁"
// with one "▁" prepended to the first section unless it starts with a space; byte-pair merges over
// the whole section, ranked as transformers derives them from tokenizer.model (by piece id); byte fallback
// (<0xXX>) for characters outside the vocabulary. Decoding drops special tokens, turns "▁" into
// spaces, reassembles bytes as UTF-8 and strips one leading space.
// Mode::kSentencePiece encodes with libsentencepiece itself (what Meta's reference and llama2.c do);
// the two differ only on runs of spaces and a leading space.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sbtrec::llm {

class Tokenizer {
 public:
  enum class Mode { kTransformers, kSentencePiece };
  // Throws ConfigError naming the file if it is missing or not a SentencePiece model.
  explicit Tokenizer(const std::string& model_path, Mode mode = Mode::kTransformers);
  ~Tokenizer();

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t vocab_size() const;  // SentencePiece pieces + added tokens
  // Adds special tokens (e.g. "[HistoryEmb]") with ids vocab_size(), vocab_size() + 1, ...
  // Prefer llm::add_special_tokens (special_tokens.h), which grows the model's embedding with it.
  std::vector<int64_t> add_special_tokens(const std::vector<std::string>& tokens);
  std::vector<int64_t> added_token_ids() const;  // ids of the tokens added so far, in order
  // Ids whose piece contains a newline (byte <0x0A> or a piece with '\n'): "stop at end of line".
  std::vector<int64_t> newline_ids() const;

 private:
  struct Merge {
    int32_t rank, result;
  };
  void build_merges();
  void encode_section(const std::string& text, bool first, std::vector<int64_t>& out) const;
  void bpe(const std::vector<int32_t>& symbols, std::vector<int64_t>& out) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  Mode mode_;
  std::vector<std::string> added_;
  std::vector<std::pair<std::string, int64_t>> specials_;  // text -> id, matched in encode
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  int32_t byte_ids_[256];
  int64_t bos_ = 1, eos_ = 2, unk_ = 0;
};

}  // namespace sbtrec::llm
