// Llama-2's SentencePiece tokenizer (tokenizer.model), giving the ids and text transformers' Llama
// tokenizer gives: BOS prepended (no EOS), SentencePiece's dummy-prefix space, byte fallback for
// characters outside the vocabulary; decoding drops special tokens and the leading prefix space.
// Extra special tokens (behavioural-token slots) get ids after the SentencePiece vocabulary.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sbtrec::llm {

class Tokenizer {
 public:
  // Throws ConfigError naming the file if it is missing or not a SentencePiece model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t vocab_size() const;  // SentencePiece pieces + added tokens
  // Adds special tokens (e.g. "[HistoryEmb]") with ids vocab_size(), vocab_size() + 1, ...
  std::vector<int64_t> add_special_tokens(const std::vector<std::string>& tokens);
  // Ids whose piece contains a newline (byte <0x0A> or a piece with '\n'): "stop at end of line".
  std::vector<int64_t> newline_ids() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::string> added_;
  int64_t bos_ = 1, eos_ = 2;
  std::string path_;
};

}  // namespace sbtrec::llm
