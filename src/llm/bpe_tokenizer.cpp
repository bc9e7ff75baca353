// Byte-level BPE: the tokenizer, its tokenizer.json reader and writer (see bpe_tokenizer.h). Each step
// follows Hugging Face tokenizers' path for a BPE model with ByteLevel pre-tokenizer and decoder, so
// ids and text equal transformers' (tests/llm/bpe_tokenizer_test.cpp compares them on a corpus).
#include "sbtrec/llm/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "bpe_merge.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec::llm {

const char* const kGpt2PreTokenizerPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// Digits(individual_digits=true / false) as the Split they amount to (Rust's char::is_numeric is \p{N}).
const char* const kDigitPattern = R"(\p{N})";
const char* const kDigitsPattern = R"(\p{N}+)";
const char* const kReplacement = "\xef\xbf\xbd";  // U+FFFD

// ------------------------------------------------------------------------------------------ UTF-8

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += (char)cp;
  } else if (cp < 0x800) {
    s += (char)(0xC0 | (cp >> 6));
    s += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += (char)(0xE0 | (cp >> 12));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  } else {
    s += (char)(0xF0 | (cp >> 18));
    s += (char)(0x80 | ((cp >> 12) & 0x3F));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  }
  return s;
}

// The UTF-8 sequence at p[0, n): its length when valid (*cp set, *valid true), else the length of its
// longest valid beginning (at least 1), which Python's errors="replace" and Rust's from_utf8_lossy
// (what tokenizers' ByteLevel decoder calls) each turn into one U+FFFD.
size_t utf8_next(const unsigned char* p, size_t n, uint32_t* cp, bool* valid) {
  const unsigned c = p[0];
  *valid = false;
  if (c < 0x80) {
    *cp = c;
    *valid = true;
    return 1;
  }
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // the second byte's range; later ones are always 80..BF
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1, v = c & 0x1F;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0, v = c & 0x0F;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2, v = c & 0x0F;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F, v = c & 0x0F;  // no surrogates
  } else if (c == 0xF0) {
    need = 3, lo = 0x90, v = c & 0x07;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3, v = c & 0x07;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F, v = c & 0x07;  // nothing past U+10FFFF
  } else {
    return 1;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (k >= n) return k;
    const unsigned b = p[k];
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xBFu)) return k;
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  *valid = true;
  return need + 1;
}

bool valid_utf8(const std::string& s) {
  const auto* p = (const unsigned char*)s.data();
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    bool ok;
    i += utf8_next(p + i, s.size() - i, &cp, &ok);
    if (!ok) return false;
  }
  return true;
}

std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* p = (const unsigned char*)bytes.data();
  for (size_t i = 0; i < bytes.size();) {
    uint32_t cp;
    bool ok;
    const size_t len = utf8_next(p + i, bytes.size() - i, &cp, &ok);
    if (ok) {
      out.append(bytes, i, len);
    } else {
      out += kReplacement;
    }
    i += len;
  }
  return out;
}

// Rust's char::is_whitespace (Unicode White_Space), what tokenizers' lstrip / rstrip take.
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// -------------------------------------------------------------------------- GPT-2's byte alphabet

// GPT-2 spells each byte as a printable character so BPE works on text: printable Latin-1 bytes stand
// for themselves, the other 68 (controls, space, 0x7F-0xA0, 0xAD) become U+0100.. in byte order.
struct ByteAlphabet {
  std::string spelling[256];   // byte -> UTF-8 of its character
  int16_t byte_of[324];        // code point -> byte, -1 outside the alphabet (all stand-ins are < 324)
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a = [] {
    ByteAlphabet a;
    std::fill(std::begin(a.byte_of), std::end(a.byte_of), (int16_t)-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : 256 + extra++;
      a.spelling[b] = utf8(cp);
      a.byte_of[cp] = (int16_t)b;
    }
    return a;
  }();
  return a;
}

// The bytes a token spells, or nullopt when it has a character outside the alphabet.
std::optional<std::string> from_byte_level(const std::string& token) {
  const auto& a = alphabet();
  std::string out;
  const auto* p = (const unsigned char*)token.data();
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    bool ok;
    i += utf8_next(p + i, token.size() - i, &cp, &ok);
    if (!ok || cp >= 324 || a.byte_of[cp] < 0) return std::nullopt;
    out += (char)a.byte_of[cp];
  }
  return out;
}

// ------------------------------------------------------------------------------------------ PCRE2

struct Regex {
  pcre2_code* code = nullptr;
  Regex(const std::string& pattern, const std::string& source) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile((PCRE2_SPTR)pattern.data(), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw ConfigError(source + ": pre-tokenizer regex '" + pattern + "' does not compile (PCRE2, at offset " +
                        std::to_string(offset) + ": " + (const char*)msg + ")");
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // where JIT is unavailable pcre2_match interprets
  }
  ~Regex() { pcre2_code_free(code); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
};

// Match data per encode call, so one tokenizer encodes from many threads.
struct MatchData {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);  // the whole match is all we read
  ~MatchData() { pcre2_match_data_free(md); }
};

// Splits valid UTF-8 `s` into the regex's matches and the text between them, as tokenizers' Split with
// behavior Isolated; empty pieces are dropped, as tokenizers drops them.
void split_isolated(const Regex& re, const std::string& s, MatchData& m, std::vector<std::string>& out) {
  const auto* subject = (PCRE2_SPTR)s.data();
  size_t prev = 0, pos = 0;
  while (pos < s.size()) {
    int rc = pcre2_match(re.code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, m.md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking on the heap
      rc = pcre2_match(re.code, subject, s.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, m.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(std::string("tokenizer: the pre-tokenizer regex failed on a text of ") + std::to_string(s.size()) +
                  " bytes (PCRE2: " + (const char*)msg + ")");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    const size_t start = ov[0], end = ov[1];
    if (end <= start) {  // an empty match splits nothing: go on after the next character
      uint32_t cp;
      bool ok;
      pos = start + utf8_next((const unsigned char*)s.data() + start, s.size() - start, &cp, &ok);
      continue;
    }
    if (start > prev) out.push_back(s.substr(prev, start - prev));
    out.push_back(s.substr(start, end - start));
    prev = pos = end;
  }
  if (prev < s.size()) out.push_back(s.substr(prev));
}

// A literal (Split's {"String": ...}) as a regex: PCRE2 reads a backslash before any ASCII
// non-alphanumeric character as that character.
std::string regex_quote(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80 && !std::isalnum(c)) out += '\\';
    out += (char)c;
  }
  return out;
}

}  // namespace

std::string to_byte_level(const std::string& bytes) {
  const auto& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += a.spelling[c];
  return out;
}

// ------------------------------------------------------------------------------------ tokenizer

struct ByteLevelBpeTokenizer::Impl {
  struct Merge {
    int32_t rank, result;
  };
  // Added tokens starting with a byte, longest first: leftmost-longest matching, as tokenizers'
  // Aho-Corasick (MatchKind::LeftmostLongest) finds them.
  struct Matcher {
    std::vector<int32_t> by_first_byte[256];  // indices into vocab.added_tokens
  };
  struct Segment {
    size_t begin, end;
    int64_t id;  // an added token, or -1 for text
  };

  BpeVocabulary vocab;
  std::unordered_map<std::string, int32_t> token_ids;  // the BPE model's vocabulary
  std::unordered_map<uint64_t, Merge> merges;
  int32_t byte_ids[256];  // the one-character token of each byte; -1 where the vocabulary lacks it
  std::vector<std::unique_ptr<Regex>> splits;  // pre-tokenizer steps before ByteLevel
  std::unique_ptr<Regex> byte_level;           // ByteLevel's own regex; null for use_regex=false
  std::unordered_map<std::string, int64_t> added_ids;  // content -> id
  Matcher verbatim, normalized;                         // normalized=false tokens, then the others
  std::vector<std::string> id_bytes;                    // id -> what decode writes for it
  std::vector<char> id_special;                         // id -> dropped by skip_special_tokens
  std::vector<int64_t> runtime_added;                   // ids from add_special_tokens, in order
  int64_t size = 0;

  void add_token(const BpeAddedToken& t);
  void split_added(const Matcher& m, const std::string& s, size_t begin, size_t end, std::vector<Segment>& out) const;
  void encode_text(const std::string& text, MatchData& md, std::vector<int64_t>& out) const;
  void encode_word(const std::string& word, std::vector<int64_t>& out) const;
};

namespace {
// What tokenizers' ByteLevel decoder writes for a token: the bytes its characters spell, or the token
// itself as UTF-8 when a character is outside the alphabet (an added token such as "my token").
std::string decoded_bytes(const std::string& token) {
  auto bytes = from_byte_level(token);
  return bytes ? *bytes : token;
}
}  // namespace

void ByteLevelBpeTokenizer::Impl::add_token(const BpeAddedToken& t) {
  const std::string where = "tokenizer '" + vocab.source + "'";
  if (t.content.empty()) throw ConfigError(where + ": an added token is empty (id " + std::to_string(t.id) + ")");
  if (!valid_utf8(t.content))
    throw ConfigError(where + ": added token id " + std::to_string(t.id) + " is not valid UTF-8");
  if (t.id < 0 || t.id >= (int64_t)INT32_MAX)
    throw ConfigError(where + ": added token '" + t.content + "' has id " + std::to_string(t.id) + ", outside [0, 2^31)");
  if (added_ids.count(t.content)) return;  // tokenizers keeps the first of two equal contents
  added_ids.emplace(t.content, t.id);
  auto& m = t.normalized ? normalized : verbatim;
  auto& list = m.by_first_byte[(unsigned char)t.content[0]];
  const int32_t index = (int32_t)(&t - vocab.added_tokens.data());
  list.push_back(index);
  std::stable_sort(list.begin(), list.end(), [&](int32_t x, int32_t y) {
    return vocab.added_tokens[x].content.size() > vocab.added_tokens[y].content.size();
  });
  if (t.id >= size) {
    size = t.id + 1;
    id_bytes.resize(size);
    id_special.resize(size, 0);
  }
  id_special[t.id] = t.special;
  id_bytes[t.id] = decoded_bytes(t.content);
}

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(BpeVocabulary vocabulary) : impl_(std::make_unique<Impl>()) {
  auto& d = *impl_;
  d.vocab = std::move(vocabulary);
  auto& v = d.vocab;
  if (v.source.empty()) v.source = "byte-level BPE vocabulary";
  const std::string where = "tokenizer '" + v.source + "'";
  if (v.tokens.empty()) throw ConfigError(where + ": the vocabulary has no tokens");
  if (v.tokens.size() >= (size_t)INT32_MAX) throw ConfigError(where + ": more than 2^31 tokens");

  if (!v.token_types.empty()) {  // a GGUF vocabulary, read as transformers' GGUF loader reads it
    if (v.token_types.size() != v.tokens.size())
      throw ConfigError(where + ": " + std::to_string(v.token_types.size()) + " token types for " +
                        std::to_string(v.tokens.size()) + " tokens; tokenizer.ggml.token_type must give one per token");
    std::unordered_set<int64_t> listed;
    for (const auto& t : v.added_tokens) listed.insert(t.id);
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      const std::string raw = v.tokens[i];
      const bool spelled = from_byte_level(raw).has_value();
      if (!spelled) v.tokens[i] = to_byte_level(raw);
      // A control token outside the alphabet is a llama.cpp mislabel: transformers skips it.
      const int32_t type = v.token_types[i];
      if ((type == 3 || type == 4) && spelled && !raw.empty() && !listed.count((int64_t)i))
        v.added_tokens.push_back({raw, (int64_t)i, type == 3, false, false, false});
    }
    std::stable_sort(v.added_tokens.begin(), v.added_tokens.end(),
                     [](const BpeAddedToken& a, const BpeAddedToken& b) { return a.id < b.id; });
  }

  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (!v.tokens[i].empty()) d.token_ids[v.tokens[i]] = (int32_t)i;  // a repeated token: the last id, as a dict
  const auto& a = alphabet();
  for (int b = 0; b < 256; ++b) {
    auto it = d.token_ids.find(a.spelling[b]);
    d.byte_ids[b] = it == d.token_ids.end() ? -1 : it->second;
  }

  d.merges.reserve(v.merges.size());
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
      throw ConfigError(where + ": merge " + std::to_string(rank) + " '" + m + "' is not \"left right\" (two tokens, one space)");
    const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    int32_t ids[3];
    const std::string parts[3] = {left, right, left + right};
    for (int k = 0; k < 3; ++k) {
      auto it = d.token_ids.find(parts[k]);
      if (it == d.token_ids.end())
        throw ConfigError(where + ": merge " + std::to_string(rank) + " '" + m + "' names '" + parts[k] +
                          "', which is not in the vocabulary; the vocabulary and merges do not belong together");
      ids[k] = it->second;
    }
    d.merges[detail::bpe_pair_key(ids[0], ids[1])] = {(int32_t)rank, ids[2]};  // a repeated merge: the last rank, as tokenizers
  }

  if (v.pre_tokenizer == "gpt2") {
    d.byte_level = std::make_unique<Regex>(kGpt2PreTokenizerPattern, v.source);
  } else if (v.pre_tokenizer == "smollm") {
    d.splits.push_back(std::make_unique<Regex>(kDigitPattern, v.source));
    d.byte_level = std::make_unique<Regex>(kGpt2PreTokenizerPattern, v.source);
  } else if (v.pre_tokenizer == "custom") {
    for (const auto& p : v.pre_split) d.splits.push_back(std::make_unique<Regex>(p, v.source));
    if (v.byte_level_regex) d.byte_level = std::make_unique<Regex>(kGpt2PreTokenizerPattern, v.source);
  } else {
    throw ConfigError(where + ": unknown pre_tokenizer '" + v.pre_tokenizer + "' (known: gpt2, smollm, custom)");
  }

  d.size = (int64_t)v.tokens.size();
  d.id_bytes.resize(d.size);
  d.id_special.assign(d.size, 0);
  for (int64_t i = 0; i < d.size; ++i) d.id_bytes[i] = decoded_bytes(v.tokens[i]);
  for (const auto& t : v.added_tokens) d.add_token(t);

  for (auto [name, id] : {std::pair<const char*, int64_t>{"bos", v.bos_id}, {"eos", v.eos_id}, {"pad", v.pad_id}, {"unk", v.unk_id}})
    if (id < -1 || id >= d.size)
      throw ConfigError(where + ": " + name + " id " + std::to_string(id) + " is outside the vocabulary [0, " +
                        std::to_string(d.size) + ")");
  if (v.add_bos && v.bos_id < 0) throw ConfigError(where + ": add_bos is set but there is no bos id");
  if (v.add_eos && v.eos_id < 0) throw ConfigError(where + ": add_eos is set but there is no eos id");
}

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(ByteLevelBpeTokenizer&&) noexcept = default;
ByteLevelBpeTokenizer& ByteLevelBpeTokenizer::operator=(ByteLevelBpeTokenizer&&) noexcept = default;
ByteLevelBpeTokenizer::~ByteLevelBpeTokenizer() = default;

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::from_tokenizer_json(const std::string& path) {
  return ByteLevelBpeTokenizer(read_tokenizer_json(path));
}

void ByteLevelBpeTokenizer::Impl::split_added(const Matcher& m, const std::string& s, size_t begin, size_t end,
                                              std::vector<Segment>& out) const {
  size_t start_offset = begin;
  for (size_t pos = begin; pos < end;) {
    const BpeAddedToken* hit = nullptr;
    for (int32_t k : m.by_first_byte[(unsigned char)s[pos]]) {
      const auto& t = vocab.added_tokens[k];
      if (t.content.size() <= end - pos && s.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    const auto* p = (const unsigned char*)s.data();
    if (hit->lstrip) {  // whitespace on the left, back to the previous token
      while (start > start_offset) {
        size_t b = start - 1;
        while (b > start_offset && (p[b] & 0xC0) == 0x80) --b;
        uint32_t cp;
        bool ok;
        utf8_next(p + b, end - b, &cp, &ok);
        if (!is_white_space(cp)) break;
        start = b;
      }
    }
    if (hit->rstrip) {
      while (stop < end) {
        uint32_t cp;
        bool ok;
        const size_t len = utf8_next(p + stop, end - stop, &cp, &ok);
        if (!is_white_space(cp)) break;
        stop += len;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, hit->id});
    start_offset = pos = stop;
  }
  if (start_offset < end) out.push_back({start_offset, end, -1});
}

void ByteLevelBpeTokenizer::Impl::encode_word(const std::string& word, std::vector<int64_t>& out) const {
  if (vocab.ignore_merges) {
    auto it = token_ids.find(to_byte_level(word));
    if (it != token_ids.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool after_unk = false;
  for (unsigned char c : word) {
    if (byte_ids[c] >= 0) {
      symbols.push_back(byte_ids[c]);
      after_unk = false;
    } else if (vocab.unk_id >= 0) {  // without an unk token tokenizers drops the byte
      if (!(vocab.fuse_unk && after_unk)) symbols.push_back((int32_t)vocab.unk_id);
      after_unk = true;
    }
  }
  detail::bpe_merge(symbols, merges, out);
}

void ByteLevelBpeTokenizer::Impl::encode_text(const std::string& text, MatchData& md, std::vector<int64_t>& out) const {
  std::vector<std::string> pieces{text}, next;
  for (const auto& re : splits) {
    next.clear();
    for (const auto& p : pieces) split_isolated(*re, p, md, next);
    pieces.swap(next);
  }
  std::vector<std::string> words;
  for (auto& p : pieces) {
    // ByteLevel prefixes each piece it is given, i.e. each piece the steps before it left.
    if (vocab.add_prefix_space && p[0] != ' ') p.insert(p.begin(), ' ');
    words.clear();
    if (byte_level) {
      split_isolated(*byte_level, p, md, words);
    } else {
      words.push_back(p);
    }
    for (const auto& w : words) encode_word(w, out);
  }
}

std::vector<int64_t> ByteLevelBpeTokenizer::encode(const std::string& text, bool add_special_tokens) const {
  const auto& d = *impl_;
  // Python cannot hold invalid UTF-8; what transformers would see is the text decoded with
  // errors="replace". It also keeps the regexes on valid input.
  std::string replaced;
  const bool valid = valid_utf8(text);
  if (!valid) replaced = utf8_lossy(text);
  const std::string& s = valid ? text : replaced;
  std::vector<int64_t> out;
  if (add_special_tokens && d.vocab.add_bos) out.push_back(d.vocab.bos_id);
  // Added tokens come out first: normalized=false ones from the text, then normalized ones from what
  // is left (there is no normalizer, so only the order differs).
  std::vector<Impl::Segment> first, segments;
  d.split_added(d.verbatim, s, 0, s.size(), first);
  for (const auto& seg : first) {
    if (seg.id >= 0) {
      segments.push_back(seg);
    } else {
      d.split_added(d.normalized, s, seg.begin, seg.end, segments);
    }
  }
  MatchData md;
  if (!md.md) throw Error("tokenizer: out of memory for PCRE2 match data");
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
    } else {
      d.encode_text(s.substr(seg.begin, seg.end - seg.begin), md, out);
    }
  }
  if (add_special_tokens && d.vocab.add_eos) out.push_back(d.vocab.eos_id);
  return out;
}

std::string ByteLevelBpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const auto& d = *impl_;
  // Bytes of all tokens first, then one lossy UTF-8 pass: a character split over two tokens comes
  // back whole, and a skipped special token between its bytes does not break it (as tokenizers).
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= d.size)
      throw Error("tokenizer '" + d.vocab.source + "': id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(d.size) + ")");
    if (skip_special_tokens && d.id_special[id]) continue;
    bytes += d.id_bytes[id];
  }
  // transformers 5 skips clean_up_tokenization_spaces for BPE tokenizers, so nothing else happens here.
  return utf8_lossy(bytes);
}

int64_t ByteLevelBpeTokenizer::bos_id() const { return impl_->vocab.bos_id; }
int64_t ByteLevelBpeTokenizer::eos_id() const { return impl_->vocab.eos_id; }
int64_t ByteLevelBpeTokenizer::pad_id() const { return impl_->vocab.pad_id; }
int64_t ByteLevelBpeTokenizer::vocab_size() const { return impl_->size; }
const BpeVocabulary& ByteLevelBpeTokenizer::vocabulary() const { return impl_->vocab; }

std::optional<int64_t> ByteLevelBpeTokenizer::token_to_id(const std::string& token) const {
  auto a = impl_->added_ids.find(token);
  if (a != impl_->added_ids.end()) return a->second;
  auto t = impl_->token_ids.find(token);
  if (t != impl_->token_ids.end()) return t->second;
  return std::nullopt;
}

std::vector<int64_t> ByteLevelBpeTokenizer::add_special_tokens(const std::vector<std::string>& tokens) {
  auto& d = *impl_;
  std::vector<int64_t> ids;
  for (const auto& t : tokens) {
    if (t.empty()) throw ConfigError("tokenizer '" + d.vocab.source + "': a special token must not be empty");
    if (auto it = d.added_ids.find(t); it != d.added_ids.end()) {
      ids.push_back(it->second);
      continue;
    }
    // A token the model's vocabulary has keeps its id, as tokenizers' AddedVocabulary does.
    auto in_vocab = d.token_ids.find(t);
    const int64_t id = in_vocab != d.token_ids.end() ? in_vocab->second : d.size;
    // added_tokens must not reallocate under the matchers' indices: they hold indices, not pointers.
    d.vocab.added_tokens.push_back({t, id, true, false, false, false});
    try {
      d.add_token(d.vocab.added_tokens.back());
    } catch (...) {
      d.vocab.added_tokens.pop_back();
      throw;
    }
    d.runtime_added.push_back(id);
    ids.push_back(id);
  }
  return ids;
}

std::vector<int64_t> ByteLevelBpeTokenizer::added_token_ids() const { return impl_->runtime_added; }

std::vector<int64_t> ByteLevelBpeTokenizer::newline_ids() const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < impl_->size; ++i)
    if (impl_->id_bytes[i].find('\n') != std::string::npos) out.push_back(i);
  return out;
}

// --------------------------------------------------------------------------- tokenizer.json in

namespace {

// Reads a tokenizer.json with every complaint naming the file and the field.
struct JsonReader {
  std::string path;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw ConfigError(path + ": " + field + ": " + what);
  }
  const json& need(const json& obj, const std::string& key, const std::string& field) const {
    if (!obj.is_object() || !obj.contains(key)) fail(field, "missing");
    return obj.at(key);
  }
  std::string str(const json& j, const std::string& field) const {
    if (!j.is_string()) fail(field, "expected a string, found " + j.dump().substr(0, 80));
    return j.get<std::string>();
  }
  bool flag(const json& obj, const std::string& key, bool fallback, const std::string& field) const {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    if (!obj.at(key).is_boolean()) fail(field, "expected true or false");
    return obj.at(key).get<bool>();
  }
  int64_t integer(const json& j, const std::string& field) const {
    if (!j.is_number_integer()) fail(field, "expected an integer, found " + j.dump().substr(0, 80));
    return j.get<int64_t>();
  }
  std::string type(const json& j, const std::string& field) const {
    if (!j.is_object()) fail(field, "expected an object with a \"type\"");
    return str(need(j, "type", field + ".type"), field + ".type");
  }
};

// A whole JSON file that must hold an object; `hint` says what the file should be.
json parse_object(const std::string& path, const std::string& hint) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw ConfigError(path + ": not valid JSON (" + std::string(e.what()) + "); " + hint);
  }
  if (!j.is_object()) throw ConfigError(path + ": expected a JSON object; " + hint);
  return j;
}

void read_pre_tokenizer(const JsonReader& r, const json& pre, BpeVocabulary& v) {
  const std::string kField = "pre_tokenizer";
  if (pre.is_null())
    r.fail(kField, "null; a byte-level BPE tokenizer.json has a ByteLevel pre-tokenizer (this one is not byte-level)");
  std::vector<json> steps;
  const std::string type = r.type(pre, kField);
  if (type == "Sequence") {
    const json& list = r.need(pre, "pretokenizers", kField + ".pretokenizers");
    if (!list.is_array()) r.fail(kField + ".pretokenizers", "expected a list");
    steps.assign(list.begin(), list.end());
  } else {
    steps.push_back(pre);
  }
  std::vector<std::string> patterns;
  bool byte_level_seen = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string field = type == "Sequence" ? kField + ".pretokenizers[" + std::to_string(i) + "]" : kField;
    const std::string t = r.type(steps[i], field);
    if (byte_level_seen)
      r.fail(field, "'" + t + "' after ByteLevel; sbtrec supports Split and Digits steps before ByteLevel only");
    if (t == "ByteLevel") {
      byte_level_seen = true;
      v.add_prefix_space = r.flag(steps[i], "add_prefix_space", false, field + ".add_prefix_space");
      v.byte_level_regex = r.flag(steps[i], "use_regex", true, field + ".use_regex");
    } else if (t == "Digits") {
      patterns.push_back(r.flag(steps[i], "individual_digits", false, field + ".individual_digits") ? kDigitPattern
                                                                                                    : kDigitsPattern);
    } else if (t == "Split") {
      const json& pattern = r.need(steps[i], "pattern", field + ".pattern");
      if (pattern.is_object() && pattern.contains("Regex")) {
        patterns.push_back(r.str(pattern.at("Regex"), field + ".pattern.Regex"));
      } else if (pattern.is_object() && pattern.contains("String")) {
        patterns.push_back(regex_quote(r.str(pattern.at("String"), field + ".pattern.String")));
      } else {
        r.fail(field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      }
      const std::string behavior = steps[i].contains("behavior") ? r.str(steps[i].at("behavior"), field + ".behavior") : "";
      if (behavior != "Isolated")
        r.fail(field + ".behavior", "'" + behavior + "'; sbtrec supports Split with behavior Isolated only");
      if (r.flag(steps[i], "invert", false, field + ".invert")) r.fail(field + ".invert", "true is not supported");
    } else {
      r.fail(field + ".type", "'" + t + "' is not supported; sbtrec reads byte-level BPE: ByteLevel, optionally after "
                              "Split and Digits steps");
    }
  }
  if (!byte_level_seen) r.fail(kField, "no ByteLevel step; sbtrec reads byte-level BPE tokenizers only");
  if (patterns.empty() && v.byte_level_regex) {
    v.pre_tokenizer = "gpt2";
  } else if (patterns.size() == 1 && patterns[0] == kDigitPattern && v.byte_level_regex) {
    v.pre_tokenizer = "smollm";
  } else {
    v.pre_tokenizer = "custom";
    v.pre_split = patterns;
  }
}

// TemplateProcessing's "single": the special tokens around $A become add_bos / add_eos.
void read_template(const JsonReader& r, const json& proc, const std::string& field, BpeVocabulary& v) {
  const json& single = r.need(proc, "single", field + ".single");
  if (!single.is_array()) r.fail(field + ".single", "expected a list");
  std::vector<int64_t> before, after;
  bool seen_a = false;
  for (const auto& piece : single) {
    if (piece.is_object() && piece.contains("Sequence")) {
      seen_a = true;
    } else if (piece.is_object() && piece.contains("SpecialToken")) {
      const std::string name = r.str(r.need(piece.at("SpecialToken"), "id", field + ".single[].SpecialToken.id"),
                                     field + ".single[].SpecialToken.id");
      const json& tokens = r.need(proc, "special_tokens", field + ".special_tokens");
      const json& entry = r.need(tokens, name, field + ".special_tokens");
      const json& ids = r.need(entry, "ids", field + ".special_tokens." + name + ".ids");
      if (!ids.is_array() || ids.size() != 1)
        r.fail(field + ".special_tokens." + name + ".ids", "expected one id");
      (seen_a ? after : before).push_back(r.integer(ids[0], field + ".special_tokens." + name + ".ids[0]"));
    } else {
      r.fail(field + ".single", "expected {\"Sequence\": ...} or {\"SpecialToken\": ...} items");
    }
  }
  if (before.size() > 1 || after.size() > 1)
    r.fail(field + ".single", "more than one special token before or after the text; sbtrec supports one BOS and one EOS");
  v.add_bos = !before.empty();
  v.add_eos = !after.empty();
  if (v.add_bos) v.bos_id = before[0];
  if (v.add_eos) v.eos_id = after[0];
}

void read_post_processor(const JsonReader& r, const json& proc, const std::string& field, BpeVocabulary& v) {
  if (proc.is_null()) return;
  const std::string t = r.type(proc, field);
  if (t == "ByteLevel") return;  // offsets only
  if (t == "TemplateProcessing") return read_template(r, proc, field, v);
  if (t == "Sequence") {
    const json& list = r.need(proc, "processors", field + ".processors");
    if (!list.is_array()) r.fail(field + ".processors", "expected a list");
    for (size_t i = 0; i < list.size(); ++i) read_post_processor(r, list[i], field + ".processors[" + std::to_string(i) + "]", v);
    return;
  }
  r.fail(field + ".type", "'" + t + "' is not supported (ByteLevel, TemplateProcessing or a Sequence of them)");
}

// A token named in tokenizer_config.json: a string, {"content": ...} (AddedToken), or null.
std::optional<std::string> config_token(const JsonReader& r, const json& cfg, const std::string& key) {
  if (!cfg.contains(key) || cfg.at(key).is_null()) return std::nullopt;
  const json& t = cfg.at(key);
  if (t.is_object()) return r.str(r.need(t, "content", key + ".content"), key + ".content");
  return r.str(t, key);
}

void read_tokenizer_config(const std::string& dir, BpeVocabulary& v) {
  const std::string path = dir + "/tokenizer_config.json";
  JsonReader r{path};
  const json cfg = parse_object(path, "fix or remove the tokenizer_config.json beside tokenizer.json");
  auto find_id = [&](const std::string& key, const std::string& token) -> int64_t {
    for (const auto& a : v.added_tokens)
      if (a.content == token) return a.id;
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == token) return (int64_t)i;
    r.fail(key, "'" + token + "' is in neither the vocabulary nor the added tokens of the tokenizer.json beside it");
  };
  // transformers 5 rebuilds the post-processor from add_bos_token / add_eos_token when the config
  // states them; otherwise tokenizer.json's template adds what it adds, and that must be the config's
  // token for bos_id() / eos_id() to name it.
  struct Special {
    const char *key, *add_key;
    int64_t* id;
    bool* add;
  };
  for (const auto& [key, add_key, id, add] : {Special{"bos_token", "add_bos_token", &v.bos_id, &v.add_bos},
                                              Special{"eos_token", "add_eos_token", &v.eos_id, &v.add_eos},
                                              Special{"pad_token", nullptr, &v.pad_id, nullptr}}) {
    const bool stated = add_key && cfg.contains(add_key);
    if (auto token = config_token(r, cfg, key)) {
      const int64_t found = find_id(key, *token);
      if (add && *add && !stated && *id != found)
        r.fail(key, "'" + *token + "', but tokenizer.json's post_processor adds id " + std::to_string(*id) +
                        "; make them agree");
      *id = found;
    }
    if (stated) *add = r.flag(cfg, add_key, false, add_key) && *id >= 0;
  }
  if (cfg.contains("chat_template") && !cfg.at("chat_template").is_null()) {
    const json& t = cfg.at("chat_template");
    if (t.is_string()) {
      v.chat_template = t.get<std::string>();
    } else if (t.is_array()) {  // named templates: the default one
      for (const auto& named : t)
        if (named.is_object() && named.value("name", "") == "default") v.chat_template = r.str(r.need(named, "template", "chat_template[].template"), "chat_template[].template");
    } else {
      r.fail("chat_template", "expected a string or a list of {name, template}");
    }
  }
}

}  // namespace

BpeVocabulary read_tokenizer_json(const std::string& path) {
  if (!path_exists(path))
    throw ConfigError("tokenizer '" + path + "': no such file (a Hugging Face model directory holds tokenizer.json)");
  JsonReader r{path};
  const json j = parse_object(path, "pass a Hugging Face tokenizer.json");
  BpeVocabulary v;
  v.source = path;
  try {
    const json& model = r.need(j, "model", "model");
    const std::string type = model.contains("type") ? r.str(model.at("type"), "model.type") : "BPE";
    if (type != "BPE")
      r.fail("model.type", "'" + type + "'; sbtrec reads byte-level BPE tokenizers only (GPT-2, SmolLM2, Llama-3, Qwen2 style)");
    const json& vocab = r.need(model, "vocab", "model.vocab");
    if (!vocab.is_object()) r.fail("model.vocab", "expected an object of token -> id");
    for (const auto& [token, id_json] : vocab.items()) {
      const int64_t id = r.integer(id_json, "model.vocab[\"" + token + "\"]");
      if (id < 0 || id >= (int64_t)INT32_MAX) r.fail("model.vocab[\"" + token + "\"]", "id outside [0, 2^31)");
      if ((size_t)id >= v.tokens.size()) v.tokens.resize(id + 1);
      v.tokens[id] = token;
    }
    const json& merges = r.need(model, "merges", "model.merges");
    if (!merges.is_array()) r.fail("model.merges", "expected a list");
    v.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string field = "model.merges[" + std::to_string(i) + "]";
      const json& m = merges[i];
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {
        const std::string a = r.str(m[0], field + "[0]"), b = r.str(m[1], field + "[1]");
        // A byte-level token never holds a space (it is spelled "Ġ"), so "left right" stays unambiguous.
        if (a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
          r.fail(field, "a token with a space; byte-level BPE tokens spell spaces as \"Ġ\"");
        v.merges.push_back(a + " " + b);
      } else {
        r.fail(field, "expected \"left right\" or [\"left\", \"right\"]");
      }
    }
    if (model.contains("dropout") && !model.at("dropout").is_null() &&
        !(model.at("dropout").is_number() && model.at("dropout").get<double>() == 0.0))
      r.fail("model.dropout", "BPE dropout (training-time randomness) is not supported; set it to null");
    if (r.flag(model, "byte_fallback", false, "model.byte_fallback"))
      r.fail("model.byte_fallback", "true (SentencePiece-style BPE); sbtrec reads byte-level BPE only");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model.at(key).is_null() && r.str(model.at(key), std::string("model.") + key) != "")
        r.fail(std::string("model.") + key, "not supported by byte-level BPE; expected null or \"\"");
    v.fuse_unk = r.flag(model, "fuse_unk", false, "model.fuse_unk");
    v.ignore_merges = r.flag(model, "ignore_merges", false, "model.ignore_merges");
    if (model.contains("unk_token") && !model.at("unk_token").is_null()) {
      const std::string unk = r.str(model.at("unk_token"), "model.unk_token");
      if (!vocab.contains(unk)) r.fail("model.unk_token", "'" + unk + "' is not in model.vocab");
      v.unk_id = vocab.at(unk).get<int64_t>();
    }

    if (j.contains("normalizer") && !j.at("normalizer").is_null()) {
      const json& n = j.at("normalizer");
      const std::string t = r.type(n, "normalizer");
      if (!(t == "Sequence" && n.contains("normalizers") && n.at("normalizers").is_array() && n.at("normalizers").empty()))
        r.fail("normalizer", "'" + t + "' changes the text before tokenization; sbtrec supports no normalizer (null)");
    }
    read_pre_tokenizer(r, j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : json(), v);

    const json decoder = j.contains("decoder") ? j.at("decoder") : json();
    if (decoder.is_null()) r.fail("decoder", "null; a byte-level BPE tokenizer.json has a ByteLevel decoder");
    {
      const std::string t = r.type(decoder, "decoder");
      bool ok = t == "ByteLevel";
      if (t == "Sequence" && decoder.contains("decoders") && decoder.at("decoders").is_array()) {
        ok = !decoder.at("decoders").empty();
        for (const auto& d : decoder.at("decoders")) ok = ok && d.is_object() && d.value("type", "") == "ByteLevel";
      }
      if (!ok) r.fail("decoder", "'" + t + "' is not supported; sbtrec decodes with ByteLevel only");
    }
    read_post_processor(r, j.contains("post_processor") ? j.at("post_processor") : json(), "post_processor", v);

    if (j.contains("added_tokens") && !j.at("added_tokens").is_null()) {
      const json& list = j.at("added_tokens");
      if (!list.is_array()) r.fail("added_tokens", "expected a list");
      // tokenizers ignores the file's "id": an added token gets the id its content already has (an
      // earlier added token, the model's vocabulary), else the next one past both; a repeated content
      // takes the later flags.
      const int64_t model_size = (int64_t)vocab.size();
      int64_t max_id = -1;
      std::unordered_map<std::string, size_t> index;
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string field = "added_tokens[" + std::to_string(i) + "]";
        const json& t = list[i];
        BpeAddedToken a;
        const int64_t file_id = r.integer(r.need(t, "id", field + ".id"), field + ".id");
        if (file_id < 0 || file_id >= (int64_t)INT32_MAX) r.fail(field + ".id", "outside [0, 2^31)");
        a.content = r.str(r.need(t, "content", field + ".content"), field + ".content");
        a.special = r.flag(t, "special", false, field + ".special");
        a.normalized = r.flag(t, "normalized", !a.special, field + ".normalized");
        a.lstrip = r.flag(t, "lstrip", false, field + ".lstrip");
        a.rstrip = r.flag(t, "rstrip", false, field + ".rstrip");
        if (r.flag(t, "single_word", false, field + ".single_word"))
          r.fail(field + ".single_word", "true is not supported (token '" + a.content + "')");
        if (a.content.empty()) continue;  // tokenizers skips it too
        if (auto seen = index.find(a.content); seen != index.end()) {
          a.id = v.added_tokens[seen->second].id;
          v.added_tokens[seen->second] = a;
          continue;
        }
        if (vocab.contains(a.content)) {
          a.id = vocab.at(a.content).get<int64_t>();
        } else {
          a.id = max_id >= model_size || model_size == 0 ? max_id + 1 : model_size;
        }
        max_id = std::max(max_id, a.id);
        index.emplace(a.content, v.added_tokens.size());
        v.added_tokens.push_back(a);
      }
    }
  } catch (const json::exception& e) {
    throw ConfigError(path + ": " + e.what());
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const std::string base = dir.empty() ? "." : dir;
  if (path_exists(base + "/tokenizer_config.json")) read_tokenizer_config(base, v);
  if (path_exists(base + "/chat_template.jinja")) v.chat_template = read_file(base + "/chat_template.jinja");
  return v;
}

// -------------------------------------------------------------------------- tokenizer.json out

void write_tokenizer_json(const BpeVocabulary& vocabulary, const std::string& dir) {
  const ByteLevelBpeTokenizer tok(vocabulary);  // refuses what cannot work, fills GGUF-derived added tokens
  const BpeVocabulary& v = tok.vocabulary();
  auto token_text = [&](int64_t id) -> std::string {
    for (const auto& a : v.added_tokens)
      if (a.id == id) return a.content;
    return v.tokens.at(id);
  };

  ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  auto added = v.added_tokens;
  std::stable_sort(added.begin(), added.end(), [](const BpeAddedToken& a, const BpeAddedToken& b) { return a.id < b.id; });
  j["added_tokens"] = ordered_json::array();
  for (const auto& a : added)
    j["added_tokens"].push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", a.lstrip},
                                 {"rstrip", a.rstrip}, {"normalized", a.normalized}, {"special", a.special}});
  j["normalizer"] = nullptr;

  auto byte_level = [&](bool use_regex) {
    return ordered_json{{"type", "ByteLevel"}, {"add_prefix_space", v.add_prefix_space}, {"trim_offsets", true},
                        {"use_regex", use_regex}};
  };
  std::vector<std::string> steps;
  if (v.pre_tokenizer == "smollm") steps = {kDigitPattern};
  if (v.pre_tokenizer == "custom") steps = v.pre_split;
  const bool use_regex = v.pre_tokenizer != "custom" || v.byte_level_regex;
  if (steps.empty()) {
    j["pre_tokenizer"] = byte_level(use_regex);
  } else {
    ordered_json list = ordered_json::array();
    for (const auto& p : steps) {
      if (p == kDigitPattern || p == kDigitsPattern) {
        list.push_back({{"type", "Digits"}, {"individual_digits", p == kDigitPattern}});
      } else {
        list.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
      }
    }
    list.push_back(byte_level(use_regex));
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", list}};
  }

  // BOS / EOS as transformers 5 writes them for add_bos_token / add_eos_token.
  ordered_json single = ordered_json::array(), pair = ordered_json::array(), specials = ordered_json::object();
  auto special = [&](int64_t id, int type_id) {
    const std::string t = token_text(id);
    specials[t] = {{"id", t}, {"ids", ordered_json::array({id})}, {"tokens", ordered_json::array({t})}};
    return ordered_json{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  for (int seq = 0; seq < 2; ++seq) {
    auto& out = seq == 0 ? single : pair;
    for (int part = 0; part <= seq; ++part) {
      if (v.add_bos) out.push_back(special(v.bos_id, part));
      out.push_back({{"Sequence", {{"id", part == 0 ? "A" : "B"}, {"type_id", part}}}});
      if (v.add_eos) out.push_back(special(v.eos_id, part));
    }
  }
  j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};

  // Every token in the model's vocabulary, added ones too: tokenizers gives an added token the id its
  // content has there, so this pins each id.
  ordered_json vocab = ordered_json::object();
  std::unordered_set<std::string> seen;
  std::vector<std::pair<int64_t, std::string>> entries;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (!v.tokens[i].empty()) entries.emplace_back((int64_t)i, v.tokens[i]);
  for (const auto& a : added)
    if (a.id >= (int64_t)v.tokens.size() || v.tokens[a.id].empty()) entries.emplace_back(a.id, a.content);
  std::stable_sort(entries.begin(), entries.end());
  for (const auto& [id, token] : entries)
    if (seen.insert(token).second) vocab[token] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& m : v.merges) {
    const size_t sp = m.find(' ');
    merges.push_back(ordered_json::array({m.substr(0, sp), m.substr(sp + 1)}));
  }
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", v.unk_id >= 0 ? ordered_json(token_text(v.unk_id)) : ordered_json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", v.fuse_unk},
                {"byte_fallback", false},
                {"ignore_merges", v.ignore_merges},
                {"vocab", vocab},
                {"merges", merges}};

  // A generic tokenizer_class: transformers then runs tokenizer.json as written, where a model class
  // (GPT2Tokenizer, Qwen2Tokenizer) would rebuild its own pre-tokenizer.
  ordered_json cfg;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  auto name = [&](int64_t id) { return id >= 0 ? ordered_json(token_text(id)) : ordered_json(nullptr); };
  cfg["bos_token"] = name(v.bos_id);
  cfg["eos_token"] = name(v.eos_id);
  cfg["pad_token"] = name(v.pad_id);
  cfg["unk_token"] = name(v.unk_id);
  cfg["add_bos_token"] = v.add_bos;
  cfg["add_eos_token"] = v.add_eos;
  cfg["clean_up_tokenization_spaces"] = false;
  if (!v.chat_template.empty()) cfg["chat_template"] = v.chat_template;

  std::string tokenizer_text, config_text;
  try {
    tokenizer_text = j.dump();
    config_text = cfg.dump(2);
  } catch (const ordered_json::exception& e) {
    throw ConfigError("write_tokenizer_json: " + vocabulary.source + ": " + e.what() + " (a token or the chat template is not valid UTF-8)");
  }
  make_dirs(dir);
  atomic_write_string(dir + "/tokenizer.json", tokenizer_text + "\n");
  atomic_write_string(dir + "/tokenizer_config.json", config_text + "\n");
}

}  // namespace sbtrec::llm
