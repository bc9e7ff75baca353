// The tokenizer factory and Llama-2's SentencePiece tokenizer (see tokenizer.h).
#include "sbtrec/llm/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>

#include "bpe_merge.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/llm/gguf_llama.h"
#include "sbtrec/llm/options.h"
#include "sbtrec/llm/bpe_tokenizer.h"

namespace sbtrec::llm {
namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581 "▁"

// UTF-8 code points of s (invalid bytes become single-byte "code points" so nothing is lost).
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    if (i + n > s.size()) n = 1;
    for (size_t k = 1; k < n; ++k)
      if (((unsigned char)s[i + k] >> 6) != 0x2) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool valid_utf8(const std::string& s) {
  for (const auto& cp : code_points(s))
    if (cp.size() == 1 && (unsigned char)cp[0] >= 0x80) return false;
  return true;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path, Mode mode)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), mode_(mode) {
  if (!path_exists(model_path))
    throw ConfigError("tokenizer '" + model_path + "': no such file (a Llama model directory holds tokenizer.model)");
  const auto status = sp_->Load(model_path);
  if (!status.ok())
    throw ConfigError("tokenizer '" + model_path + "' is not a valid SentencePiece model: " + status.ToString());
  bos_ = sp_->bos_id() >= 0 ? sp_->bos_id() : 1;
  eos_ = sp_->eos_id() >= 0 ? sp_->eos_id() : 2;
  unk_ = sp_->unk_id() >= 0 ? sp_->unk_id() : 0;
  pad_ = sp_->pad_id() >= 0 ? sp_->pad_id() : -1;
  for (int i = 0; i < sp_->GetPieceSize(); ++i) {
    piece_to_id_.emplace(sp_->IdToPiece(i), i);
    // transformers matches the special pieces' text ("<s>", ...) inside the input; SentencePiece does not.
    if (mode_ == Mode::kTransformers && (sp_->IsControl(i) || sp_->IsUnknown(i))) specials_.emplace_back(sp_->IdToPiece(i), i);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = piece_to_id_.find(name);
    byte_ids_[b] = it == piece_to_id_.end() ? -1 : it->second;
  }
  if (mode_ == Mode::kTransformers) build_merges();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

// Merges as transformers derives them from a SentencePiece tokenizer.model (generate_merges without
// scores): every split of every piece into two pieces, ranked by (piece id, left length, right
// length) ascending. Ranking by id rather than score is what makes runs of spaces merge into "▁▁".
void SentencePieceTokenizer::build_merges() {
  struct Cand {
    int32_t llen, rlen, left, right, result;
  };
  std::vector<Cand> cands;
  for (int i = 0; i < sp_->GetPieceSize(); ++i) {
    const auto cps = code_points(sp_->IdToPiece(i));
    std::vector<Cand> local;
    std::string left;
    for (size_t k = 1; k < cps.size(); ++k) {
      left += cps[k - 1];
      std::string right;
      for (size_t j = k; j < cps.size(); ++j) right += cps[j];
      auto l = piece_to_id_.find(left), r = piece_to_id_.find(right);
      if (l != piece_to_id_.end() && r != piece_to_id_.end())
        local.push_back({(int32_t)k, (int32_t)(cps.size() - k), l->second, r->second, i});
    }
    std::stable_sort(local.begin(), local.end(),
                     [](const Cand& a, const Cand& b) { return a.left != b.left ? a.left < b.left : a.right < b.right; });
    cands.insert(cands.end(), local.begin(), local.end());
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    if (a.result != b.result) return a.result < b.result;
    if (a.llen != b.llen) return a.llen < b.llen;
    return a.rlen < b.rlen;
  });
  for (size_t rank = 0; rank < cands.size(); ++rank)
    merges_.emplace(detail::bpe_pair_key(cands[rank].left, cands[rank].right), Merge{(int32_t)rank, cands[rank].result});
}

void SentencePieceTokenizer::encode_section(const std::string& text, bool first, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  if (mode_ == Mode::kSentencePiece) {
    std::vector<int> ids;
    const auto status = sp_->Encode(text, &ids);
    if (!status.ok()) throw Error("tokenizer: cannot encode text: " + status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  std::string s = replace_all(text, " ", kSpace);
  if (first && s.compare(0, kSpace.size(), kSpace) != 0) s = kSpace + s;
  std::vector<int32_t> symbols;
  for (const auto& cp : code_points(s)) {
    auto it = piece_to_id_.find(cp);
    if (it != piece_to_id_.end()) {
      symbols.push_back(it->second);
      continue;
    }
    bool all_bytes = true;
    for (unsigned char c : cp) all_bytes = all_bytes && byte_ids_[c] >= 0;
    if (all_bytes) {
      for (unsigned char c : cp) symbols.push_back(byte_ids_[c]);
    } else if (symbols.empty() || symbols.back() != unk_) {  // unknown characters fuse into one <unk>
      symbols.push_back((int32_t)unk_);
    }
  }
  detail::bpe_merge(symbols, merges_, out);
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize() + (int64_t)added_.size(); }

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> out;
  if (add_special_tokens) out.push_back(bos_);  // Llama-2's tokenizer_config: add_bos_token, no EOS
  // Special-token strings are cut out first (leftmost, longest), the rest is encoded per section.
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string::npos;
    const std::pair<std::string, int64_t>* which = nullptr;
    for (const auto& sp : specials_) {
      const size_t f = text.find(sp.first, pos);
      if (f != std::string::npos && (f < best || (f == best && sp.first.size() > which->first.size()))) {
        best = f;
        which = &sp;
      }
    }
    encode_section(text.substr(pos, best == std::string::npos ? std::string::npos : best - pos), pos == 0, out);
    if (!which) break;
    out.push_back(which->second);
    pos = best + which->first.size();
  }
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const int64_t n = sp_->GetPieceSize();
  if (mode_ == Mode::kSentencePiece) {  // runs of ordinary ids go through SentencePiece's own decoder
    std::string out;
    std::vector<int> run;
    auto flush = [&]() {
      std::string text;
      if (!run.empty() && !sp_->Decode(run, &text).ok()) throw Error("tokenizer: cannot decode ids");
      out += text;
      run.clear();
    };
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) throw Error("tokenizer: id " + std::to_string(id) + " outside the vocabulary");
      if (id < n && !sp_->IsControl((int)id)) {
        run.push_back((int)id);
        continue;
      }
      flush();
      if (!skip_special_tokens) out += id >= n ? added_[id - n] : sp_->IdToPiece((int)id);
    }
    flush();
    return out;
  }
  std::string out, bytes;
  auto flush_bytes = [&]() {
    if (bytes.empty()) return;
    if (valid_utf8(bytes)) {
      out += bytes;
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) out += "\xef\xbf\xbd";  // U+FFFD per byte, as transformers
    }
    bytes.clear();
  };
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw Error("tokenizer: id " + std::to_string(id) + " outside the vocabulary");
    const bool special = id >= n || sp_->IsControl((int)id) || sp_->IsUnknown((int)id);
    if (special && skip_special_tokens) continue;
    if (id < n && sp_->IsByte((int)id)) {
      bytes.push_back((char)std::stoi(sp_->IdToPiece((int)id).substr(3, 2), nullptr, 16));
      continue;
    }
    flush_bytes();
    out += id >= n ? added_[id - n] : replace_all(sp_->IdToPiece((int)id), kSpace, " ");
  }
  flush_bytes();
  if (!out.empty() && out[0] == ' ') out.erase(0, 1);  // the prefix space (transformers' Strip decoder)
  return out;
}

std::vector<int64_t> SentencePieceTokenizer::added_token_ids() const {
  std::vector<int64_t> ids(added_.size());
  for (size_t i = 0; i < added_.size(); ++i) ids[i] = sp_->GetPieceSize() + (int64_t)i;
  return ids;
}

std::vector<int64_t> SentencePieceTokenizer::add_special_tokens(const std::vector<std::string>& tokens) {
  std::vector<int64_t> ids;
  for (const auto& t : tokens) {
    if (t.empty()) throw ConfigError("tokenizer: a special token must not be empty");
    auto it = std::find(added_.begin(), added_.end(), t);
    if (it == added_.end()) {
      added_.push_back(t);
      specials_.emplace_back(t, sp_->GetPieceSize() + (int64_t)added_.size() - 1);
      it = added_.end() - 1;
    }
    ids.push_back(sp_->GetPieceSize() + (int64_t)(it - added_.begin()));
  }
  return ids;
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(const std::string& token) const {
  auto it = std::find(added_.begin(), added_.end(), token);
  if (it != added_.end()) return sp_->GetPieceSize() + (int64_t)(it - added_.begin());
  auto p = piece_to_id_.find(token);
  if (p != piece_to_id_.end()) return p->second;
  return std::nullopt;
}

std::vector<int64_t> SentencePieceTokenizer::newline_ids() const {
  std::vector<int64_t> out;
  for (int i = 0; i < sp_->GetPieceSize(); ++i) {
    const std::string piece = sp_->IdToPiece(i);
    if (piece == "<0x0A>" || piece.find('\n') != std::string::npos) out.push_back(i);
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model) {
  const std::string path = resolve_model(model);
  namespace fs = std::filesystem;
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::error_code ec;
  if (gguf::is_gguf_file(path)) {
    gguf::File file(path);  // header only: tensors stay unread in the mapping
    return std::make_unique<ByteLevelBpeTokenizer>(bpe_vocabulary_from_gguf(file.header()));
  }
  if (fs::is_directory(path, ec)) {
    // tokenizer.model first: a Llama directory also holds a tokenizer.json, of SentencePiece-style
    // BPE (Metaspace, byte fallback) that the byte-level reader rightly refuses.
    if (fs::exists(path + "/tokenizer.model", ec)) return std::make_unique<SentencePieceTokenizer>(path + "/tokenizer.model");
    if (fs::exists(path + "/tokenizer.json", ec)) return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_tokenizer_json(path + "/tokenizer.json"));
    throw ConfigError("tokenizer: directory '" + path + "' holds neither tokenizer.model (SentencePiece) nor tokenizer.json "
                      "(Hugging Face byte-level BPE); pass the model directory that has one, or the file itself");
  }
  if (ends_with(".model")) return std::make_unique<SentencePieceTokenizer>(path);
  if (ends_with(".json")) return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_tokenizer_json(path));
  if (!path_exists(path))
    throw ConfigError("tokenizer '" + path + "': no such file or directory (expected a model directory with tokenizer.model "
                      "or tokenizer.json, or one of those files)");
  throw ConfigError("tokenizer '" + path + "': not a directory, a *.model (SentencePiece) or a *.json (Hugging Face "
                    "tokenizer.json) file; pass the model directory or its tokenizer file");
}

}  // namespace sbtrec::llm
