// Byte-level BPE parity on SmolLM2-135M-Instruct's tokenizer as transformers loads it from the GGUF
// (saved as tokenizer.json, sbtrec's input): ids and decoded text equal transformers' on every
// MovieLens title, LastFM and Steam name and hand-picked hard cases; decoding of random id sequences;
// added special tokens; tokenizer.json variants (SmolLM's own Digits pre-tokenizer, a Split regex,
// add_prefix_space, BOS/EOS templates, lstrip/rstrip added tokens) against tokenizers itself; and the
// tokenizer.json sbtrec writes, loaded back by transformers, tokenizes as sbtrec does.
#include "sbtrec/llm/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/llm/special_tokens.h"
#include "tokenizer_corpus.h"

using namespace sbtrec;
using llm::ByteLevelBpeTokenizer;
using json = nlohmann::json;

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> c = {
      "", " ", "  ", "   ", "    x", "a  b", "a   b", "trailing  ", " leading", "  leading two", "\t", "\ttab\tinside",
      "a\nb", "\n\n", "line\r\nnext", "\r\n\r\n", " \n ", "x \n y", "hi  \n", "Hello\n\nworld\n",
      // digits: SmolLM2 has no merges of digits; "  1" is where the GGUF and SmolLM's Digits split differ
      " 123", "abc123", "1,000.50", "  1", "x  1", "2024-01-01", "3.14159", "1234567890", "Se7en", "१२३ ٣٤٥ ½",
      "don't", "I'LL", "they're", "it 's", "we've'm'd", "'s'S", "O'Neil's",
      "café", "Café crème brûlée", "über", "niño", "e\u0301", "Ünïcödé ßtraße", "Ωmega λ",
      "😀", "emoji 😀🎬🍿", "👨‍👩‍👧", "👍🏽", "🏳️‍🌈", "中文字符", "日本語のテキスト", "한국어", "Привет, мир", "עברית",
      "العربية",
      "<|im_start|>user\nhi<|im_end|>", "<|im_start|>", "x<|im_end|>y", "<|im_start|><|im_end|>", "<|endoftext|> end",
      "<|im_start", "<|im_start|>assistant\n", "<repo_name>x<file_sep>", "<s>not special</s>",
      // Unicode white space and near-misses (zero-width space and BOM are not white space)
      "a\u0085b\u00a0c\u1680d\u2000e\u2028f\u202fg\u205fh\u3000i\u180ej\u200bk\ufeffl", "x\u00a0 y", " \u3000 ",
      "\x01\x04\x06\x13\x1d\x7f",  // control bytes, some missing from SmolLM2's vocabulary
      "\U00040000 \U000BFFFF",     // planes 4-11: lead bytes F1 / F2, also missing
      "This user has watched Toy Story (1995), Heat and The Usual Suspects.", "What's up? -- ok...",
      "quote \"x\" 'y'", "C++ & C#", "@user #tag $5 %50 ^_^ ~~", "a.b.c", "...", "!!!???",
      // for the added_strip variant: lstrip/rstrip, a normalized token with a space, one in the byte alphabet
      "x  [L]  y", "[L]", "a my tok b", "my tokmy tok", "café au lait",
      std::string(3000, ' '), std::string(2000, 'a'), "x" + std::string(500, '\n') + "y"};
  const auto titles = test::shared_titles(1 << 30);
  c.insert(c.end(), titles.begin(), titles.end());
  return c;
}

// The reference run (one Python call per build tree, see test::cached_fixture): OUT/ref.json and
// the tokenizer.json files. Empty with *error set on failure.
std::string reference_fixture(const std::vector<std::string>& texts, std::string* error) {
  test::TempDir dir;
  const std::string corpus_json = json(texts).dump();
  test::write_text(dir / "corpus.json", corpus_json);
  const std::string script = test::source("scripts/make_bpe_tokenizer_fixtures.py");
  const std::string model = test::default_model_gguf();
  return test::cached_fixture(
      "bpe-tokenizer",
      test::read_text(script) + corpus_json + model + std::to_string(std::filesystem::file_size(model)),
      std::string(SBTREC_PYTHON) + " " + script + " --gguf " + model + " --corpus " + (dir / "corpus.json"), error);
}

// The corpus with the reference run's directory and ref.json (dir "" and error set when it failed).
struct Reference {
  std::vector<std::string> texts;
  std::string dir, error;
  json ref;
};

Reference reference() {
  Reference r;
  r.texts = corpus();
  r.dir = reference_fixture(r.texts, &r.error);
  if (!r.dir.empty()) r.ref = json::parse(test::read_text(r.dir + "/ref.json"));
  return r;
}

#define SBTREC_REQUIRE_BPE_FIXTURE_INPUTS()             \
  SBTREC_REQUIRE_MODEL();                               \
  SBTREC_REQUIRE_PYTHON();                              \
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.item");         \
  SBTREC_REQUIRE_SHARED("data/llara/lastfm/id2name.txt"); \
  SBTREC_REQUIRE_SHARED("data/llara/steam/id2name.txt")

// Counts mismatches and reports the first few in full (a broken tokenizer fails thousands of rows).
struct Mismatches {
  int count = 0;
  void add(bool equal, const std::string& what) {
    if (equal) return;
    if (++count <= 20) ADD_FAILURE() << what;
  }
};

std::string show(const std::string& text) { return json(text).dump().substr(0, 200); }
std::string show(const std::vector<int64_t>& ids) { return json(ids).dump().substr(0, 300); }

}  // namespace

TEST(BpeTokenizer, MatchesTransformersOnSmolLM2FromGguf) {
  SBTREC_REQUIRE_BPE_FIXTURE_INPUTS();
  const auto r = reference();
  ASSERT_FALSE(r.dir.empty()) << r.error;
  const auto& [texts, fx, error, ref] = r;
  // transformers' tokenizer.json of the GGUF, and the GGUF file itself (its tokenizer.ggml.* metadata).
  for (const std::string source : {fx + "/gguf/tokenizer.json", test::default_model_gguf()}) {
  SCOPED_TRACE(source);
  const auto loaded = llm::load_tokenizer(source);
  const auto& tok = dynamic_cast<const ByteLevelBpeTokenizer&>(*loaded);
  EXPECT_EQ(tok.vocab_size(), ref["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.bos_id(), ref["bos_token_id"].get<int64_t>());
  EXPECT_EQ(tok.eos_id(), ref["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok.pad_id(), ref["pad_token_id"].get<int64_t>());
  EXPECT_EQ(tok.vocabulary().chat_template, ref["chat_template"].get<std::string>());
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 1);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 2);

  Mismatches ids_bad, text_bad;
  int n = 0;
  for (const auto& row : ref["rows"]) {
    const std::string text = row["text"];
    const auto ids = tok.encode(text);
    ids_bad.add(ids == row["ids"].get<std::vector<int64_t>>(),
                "ids differ for " + show(text) + ": got " + show(ids) + " want " + row["ids"].dump().substr(0, 300));
    const auto want = row["ids"].get<std::vector<int64_t>>();
    text_bad.add(tok.decode(want) == row["decoded"].get<std::string>() &&
                     tok.decode(want, false) == row["decoded_special"].get<std::string>(),
                 "decoded text differs for " + show(text) + ": got " + show(tok.decode(want, false)));
    ++n;
  }
  Mismatches decode_bad;
  for (const auto& row : ref["decodes"]) {
    const auto ids = row["ids"].get<std::vector<int64_t>>();
    decode_bad.add(tok.decode(ids) == row["decoded"].get<std::string>(),
                   "decode(" + show(ids) + ") = " + show(tok.decode(ids)) + ", want " + row["decoded"].dump());
    decode_bad.add(tok.decode(ids, false) == row["decoded_special"].get<std::string>(),
                   "decode(" + show(ids) + ", false) = " + show(tok.decode(ids, false)) + ", want " +
                       row["decoded_special"].dump());
  }
  EXPECT_EQ(ids_bad.count, 0);
  EXPECT_EQ(text_bad.count, 0);
  EXPECT_EQ(decode_bad.count, 0);
  EXPECT_GT(n, 9000);
  RecordProperty("texts", n);
  std::cout << "bpe tokenizer corpus: " << n << " texts, ids differ on " << ids_bad.count << ", text on "
            << text_bad.count << "; " << ref["decodes"].size() << " random decodes, " << decode_bad.count
            << " differ (" << ref["tokenizer_class"].get<std::string>() << ", transformers "
            << ref["transformers"].get<std::string>() << ", tokenizers " << ref["tokenizers"].get<std::string>() << ")\n";
  }
}

TEST(BpeTokenizer, TokenizerJsonVariantsMatchTokenizers) {
  SBTREC_REQUIRE_BPE_FIXTURE_INPUTS();
  const auto r = reference();
  ASSERT_FALSE(r.dir.empty()) << r.error;
  const auto& [texts, fx, error, ref] = r;
  ASSERT_EQ(ref["variants"].size(), 5u);
  for (const auto& [name, want] : ref["variants"].items()) {
    SCOPED_TRACE(name);
    const auto tok = ByteLevelBpeTokenizer::from_tokenizer_json(fx + "/" + name + "/tokenizer.json");
    Mismatches bad;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto ids = tok.encode(texts[i]);
      bad.add(ids == want["ids"][i].get<std::vector<int64_t>>(),
              name + ": ids differ for " + show(texts[i]) + ": got " + show(ids) + " want " + want["ids"][i].dump().substr(0, 300));
      bad.add(tok.decode(ids) == want["decoded"][i].get<std::string>() &&
                  tok.decode(ids, false) == want["decoded_special"][i].get<std::string>(),
              name + ": decoded text differs for " + show(texts[i]) + ": got " + show(tok.decode(ids, false)));
    }
    EXPECT_EQ(bad.count, 0) << name;
  }
}

TEST(BpeTokenizer, AddedSpecialTokensMatchTransformersAndGrowTheModel) {
  SBTREC_REQUIRE_BPE_FIXTURE_INPUTS();
  const auto r = reference();
  ASSERT_FALSE(r.dir.empty()) << r.error;
  const auto& fx = r.dir;
  const auto& ref = r.ref["added"];
  auto tok = ByteLevelBpeTokenizer::from_tokenizer_json(fx + "/gguf/tokenizer.json");
  auto cfg = llm::llama_tiny();
  cfg.vocab_size = tok.vocab_size();
  llm::LlamaForCausalLM model(cfg);
  std::vector<std::string> added;
  for (const auto& pair : ref["tokens"]) added.push_back(pair[0]);
  const auto ids = llm::add_special_tokens(tok, *model, added);
  for (size_t i = 0; i < added.size(); ++i) EXPECT_EQ(ids[i], ref["tokens"][i][1].get<int64_t>()) << added[i];
  EXPECT_EQ(tok.vocab_size(), ref["vocab_size"].get<int64_t>());
  EXPECT_EQ(model->config.vocab_size, tok.vocab_size());
  EXPECT_EQ(model->model->embed_tokens->weight.size(0), tok.vocab_size());
  for (const auto& row : ref["rows"]) {
    const std::string text = row["text"];
    const auto got = tok.encode(text);
    EXPECT_EQ(got, row["ids"].get<std::vector<int64_t>>()) << show(text);
    EXPECT_EQ(tok.decode(got), row["decoded"].get<std::string>()) << show(text);
    EXPECT_EQ(tok.decode(got, false), row["decoded_special"].get<std::string>()) << show(text);
  }
  // Generation suppresses what this call added, a vocabulary token made special ("Hello") included,
  // but not <|im_end|>, which the tokenizer had already: it is the EOS.
  std::vector<int64_t> want_suppressed;
  for (size_t i = 0; i < added.size(); ++i)
    if (added[i] != "<|im_end|>") want_suppressed.push_back(ids[i]);
  llm::GenerationOptions o;
  llm::suppress_added_tokens(tok, o);
  EXPECT_EQ(o.suppress_token_ids, want_suppressed);
}

TEST(BpeTokenizer, WrittenTokenizerJsonLoadsInTransformersAndTokenizesTheSame) {
  SBTREC_REQUIRE_BPE_FIXTURE_INPUTS();
  const auto fixture = reference();
  ASSERT_FALSE(fixture.dir.empty()) << fixture.error;
  const auto& texts = fixture.texts;
  const auto& fx = fixture.dir;
  // What convert writes: the GGUF's vocabulary as read, one with BOS/EOS on, a chat template and
  // added tokens, and the variants' pre-tokenizers (Digits, Split, add_prefix_space).
  std::map<std::string, llm::BpeVocabulary> cases;
  cases["as_read"] = llm::read_tokenizer_json(fx + "/gguf/tokenizer.json");
  {
    ByteLevelBpeTokenizer t(cases["as_read"]);
    t.add_special_tokens({"[HistoryEmb]", "[PH]"});
    auto v = t.vocabulary();
    v.add_bos = v.add_eos = true;
    v.chat_template = "{{ messages[0]['content'] }}";
    cases["bos_eos_added"] = v;
  }
  for (const char* name : {"smollm", "llama3_split", "prefix_space", "added_strip"})
    cases[name] = llm::read_tokenizer_json(fx + "/" + std::string(name) + "/tokenizer.json");

  test::TempDir dir;
  std::string command = std::string(SBTREC_PYTHON) + " " + test::source("scripts/make_bpe_tokenizer_fixtures.py");
  std::string inputs = test::read_text(test::source("scripts/make_bpe_tokenizer_fixtures.py"));
  const std::string corpus_json = json(texts).dump();
  test::write_text(dir / "corpus.json", corpus_json);
  command += " --corpus " + (dir / "corpus.json");
  inputs += corpus_json;
  for (const auto& [name, v] : cases) {
    llm::write_tokenizer_json(v, dir / name);
    command += " --check-dir " + (dir / name);
    inputs += name + test::read_text(dir / name + "/tokenizer.json") + test::read_text(dir / name + "/tokenizer_config.json");
  }
  std::string error;
  const std::string out = test::cached_fixture("bpe-tokenizer-written", inputs, command, &error);
  ASSERT_FALSE(out.empty()) << error;
  const auto ref = json::parse(test::read_text(out + "/ref.json"))["dirs"];
  for (const auto& [name, v] : cases) {
    SCOPED_TRACE(name);
    const ByteLevelBpeTokenizer want(v);
    const auto reread = ByteLevelBpeTokenizer::from_tokenizer_json(dir / name + "/tokenizer.json");
    const auto& got = ref.at(name);
    EXPECT_EQ(got["vocab_size"].get<int64_t>(), want.vocab_size());
    EXPECT_EQ(reread.vocab_size(), want.vocab_size());
    EXPECT_EQ(got["bos_token_id"].is_null() ? -1 : got["bos_token_id"].get<int64_t>(), want.bos_id());
    EXPECT_EQ(got["eos_token_id"].is_null() ? -1 : got["eos_token_id"].get<int64_t>(), want.eos_id());
    EXPECT_EQ(got["pad_token_id"].is_null() ? -1 : got["pad_token_id"].get<int64_t>(), want.pad_id());
    EXPECT_EQ(got["chat_template"].is_null() ? "" : got["chat_template"].get<std::string>(), v.chat_template);
    EXPECT_EQ(reread.vocabulary().chat_template, v.chat_template);
    Mismatches bad;
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto ids = want.encode(texts[i]);
      bad.add(ids == got["ids"][i].get<std::vector<int64_t>>(),
              name + ": transformers' ids differ for " + show(texts[i]) + ": sbtrec " + show(ids) + ", transformers " +
                  got["ids"][i].dump().substr(0, 300));
      bad.add(want.decode(ids) == got["decoded"][i].get<std::string>(), name + ": decoded text differs for " + show(texts[i]));
      bad.add(reread.encode(texts[i]) == ids, name + ": sbtrec's re-read tokenizer.json encodes " + show(texts[i]) + " differently");
    }
    EXPECT_EQ(bad.count, 0) << name << " (" << got["tokenizer_class"].get<std::string>() << ")";
  }
}
