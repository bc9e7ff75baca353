// SentencePiece tokenizer (see tokenizer.h).
#include "sbtrec/llm/tokenizer.h"

#include <sentencepiece_processor.h>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec::llm {

Tokenizer::Tokenizer(const std::string& model_path) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  if (!path_exists(model_path))
    throw ConfigError("tokenizer '" + model_path + "': no such file (a Llama model directory holds tokenizer.model)");
  const auto status = sp_->Load(model_path);
  if (!status.ok())
    throw ConfigError("tokenizer '" + model_path + "' is not a valid SentencePiece model: " + status.ToString());
  bos_ = sp_->bos_id() >= 0 ? sp_->bos_id() : 1;
  eos_ = sp_->eos_id() >= 0 ? sp_->eos_id() : 2;
}

Tokenizer::~Tokenizer() = default;

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize() + (int64_t)added_.size(); }

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> out;
  if (add_bos) out.push_back(bos_);
  // Added special tokens are matched literally and never split; the text between them goes to
  // SentencePiece.
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string::npos, which = 0;
    for (size_t i = 0; i < added_.size(); ++i) {
      const size_t f = text.find(added_[i], pos);
      if (f < best) best = f, which = i;
    }
    const std::string chunk = text.substr(pos, best == std::string::npos ? std::string::npos : best - pos);
    if (!chunk.empty()) {
      std::vector<int> ids;
      const auto status = sp_->Encode(chunk, &ids);
      if (!status.ok()) throw Error("tokenizer: cannot encode text: " + status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    }
    if (best == std::string::npos) break;
    out.push_back(sp_->GetPieceSize() + (int64_t)which);
    pos = best + added_[which].size();
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  std::vector<int> run;
  auto flush = [&]() {
    if (run.empty()) return;
    std::string text;
    const auto status = sp_->Decode(run, &text);
    if (!status.ok()) throw Error("tokenizer: cannot decode ids: " + status.ToString());
    out += text;
    run.clear();
  };
  const int64_t n = sp_->GetPieceSize();
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw Error("tokenizer: id " + std::to_string(id) + " outside the vocabulary");
    if (id >= n) {
      flush();
      if (!skip_special_tokens) out += added_[id - n];
    } else if (sp_->IsControl((int)id)) {
      flush();
      if (!skip_special_tokens) out += sp_->IdToPiece((int)id);
    } else {
      run.push_back((int)id);
    }
  }
  flush();
  return out;
}

std::vector<int64_t> Tokenizer::add_special_tokens(const std::vector<std::string>& tokens) {
  std::vector<int64_t> ids;
  for (const auto& t : tokens) {
    if (t.empty()) throw ConfigError("tokenizer: a special token must not be empty");
    auto it = std::find(added_.begin(), added_.end(), t);
    if (it == added_.end()) {
      added_.push_back(t);
      it = added_.end() - 1;
    }
    ids.push_back(sp_->GetPieceSize() + (int64_t)(it - added_.begin()));
  }
  return ids;
}

std::vector<int64_t> Tokenizer::newline_ids() const {
  std::vector<int64_t> out;
  for (int i = 0; i < sp_->GetPieceSize(); ++i) {
    const std::string piece = sp_->IdToPiece(i);
    if (piece == "<0x0A>" || piece.find('\n') != std::string::npos) out.push_back(i);
  }
  return out;
}

}  // namespace sbtrec::llm
