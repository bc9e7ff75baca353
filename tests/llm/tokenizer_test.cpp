// Tokenizer parity: on a fixed corpus (hand-picked hard cases, every MovieLens title, LastFM artist
// names and Steam titles from ../shared), sbtrec's ids and decoded text equal transformers' Llama
// tokenizer's; in SentencePiece mode they equal SentencePiece's own. Added special tokens, added to
// tokenizer and model by one call, tokenize as transformers' after add_special_tokens and grow the
// embedding with the vocabulary.
#include <nlohmann/json.hpp>

#include "sbtrec/llm/tokenizer.h"

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/llm/special_tokens.h"
#include "tokenizer_corpus.h"

using namespace sbtrec;
using llm::SentencePieceTokenizer;

namespace {
const char* kTokenizer = "models/llama2-tokenizer/tokenizer.model";

std::vector<std::string> corpus() {
  std::vector<std::string> c = {
      "Hello world", " Hello", "  two spaces", "x  y", "trailing ", " ", "", "a\nb", "Hello\n\nworld\n", "\ttab",
      "Café crème brûlée", "Ünïcödé ßtraße", "中文字符", "emoji 😀🎬🍿", "日本語のテキスト", "Ωmega λ",
      "<s>inside</s> and <unk>", "This user has watched Toy Story (1995), Heat and The Usual Suspects.",
      "[HistoryEmb] is not special", "1234567890", "ends with a newline\n", "   leading three",
      "Se7en", "What's up? -- ok...", "quote \"x\" 'y'", "numbers 3.14159 and 2,718"};
  const auto titles = test::shared_titles(800);
  c.insert(c.end(), titles.begin(), titles.end());
  return c;
}
}  // namespace

TEST(Tokenizer, MatchesTransformersAndSentencePieceOnCorpus) {
  SBTREC_REQUIRE_SHARED(kTokenizer);
  // The corpus is mostly the shared titles: without them the size check below would fail, not skip.
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.item");
  SBTREC_REQUIRE_SHARED("data/llara/lastfm/id2name.txt");
  SBTREC_REQUIRE_SHARED("data/llara/steam/id2name.txt");
  if (!std::filesystem::exists(SBTREC_PYTHON)) GTEST_SKIP() << "missing " << SBTREC_PYTHON << " (run ./scripts/setup.sh)";
  test::TempDir dir;
  const auto texts = corpus();
  test::write_text(dir / "corpus.json", nlohmann::json(texts).dump());
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/make_tokenizer_fixtures.py") +
                     " --tokenizer " + test::shared(kTokenizer) + " --corpus " + (dir / "corpus.json") + " --out " +
                     (dir / "ref.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = nlohmann::json::parse(test::read_text(dir / "ref.json"));
  SentencePieceTokenizer hf(test::shared(kTokenizer));
  SentencePieceTokenizer sp(test::shared(kTokenizer), SentencePieceTokenizer::Mode::kSentencePiece);
  int ids_equal = 0, text_equal = 0, sp_equal = 0, n = 0;
  for (const auto& row : ref["rows"]) {
    const std::string text = row["text"];
    const auto ids = hf.encode(text);
    const bool same_ids = ids == row["ids"].get<std::vector<int64_t>>();
    const bool same_text = hf.decode(ids) == row["decoded"].get<std::string>();
    const auto sids = sp.encode(text);
    const bool same_sp = sids == row["sp_ids"].get<std::vector<int64_t>>() && sp.decode(sids) == row["sp_decoded"].get<std::string>();
    EXPECT_TRUE(same_ids) << "ids differ for " << nlohmann::json(text).dump() << ": got " << nlohmann::json(ids).dump()
                          << " want " << row["ids"].dump();
    EXPECT_TRUE(same_text) << "decoded text differs for " << nlohmann::json(text).dump();
    EXPECT_TRUE(same_sp) << "SentencePiece mode differs for " << nlohmann::json(text).dump();
    ids_equal += same_ids;
    text_equal += same_text;
    sp_equal += same_sp;
    ++n;
  }
  EXPECT_GT(n, 1000);
  RecordProperty("texts", n);
  std::cout << "tokenizer corpus: " << n << " texts, transformers ids equal " << ids_equal << ", text equal " << text_equal
            << ", SentencePiece equal " << sp_equal << " (" << ref["tokenizer_class"].get<std::string>() << ", transformers "
            << ref["transformers"].get<std::string>() << ")\n";
}

TEST(Tokenizer, AddedSpecialTokensAndErrors) {
  SBTREC_REQUIRE_SHARED(kTokenizer);
  SentencePieceTokenizer tok(test::shared(kTokenizer));
  EXPECT_EQ(tok.vocab_size(), 32000);
  auto ids = tok.add_special_tokens({"[HistoryEmb]", "[CansEmb]"});
  EXPECT_EQ(ids, (std::vector<int64_t>{32000, 32001}));
  auto enc = tok.encode("watched [HistoryEmb] then[CansEmb]");
  EXPECT_EQ(std::count(enc.begin(), enc.end(), 32000), 1);
  EXPECT_EQ(std::count(enc.begin(), enc.end(), 32001), 1);
  EXPECT_EQ(tok.decode(enc, false), "<s> watched [HistoryEmb] then[CansEmb]");
  EXPECT_FALSE(tok.newline_ids().empty());
  EXPECT_EQ(tok.token_to_id("<s>"), 1);
  EXPECT_EQ(tok.token_to_id("[CansEmb]"), 32001);
  EXPECT_EQ(tok.token_to_id("not a piece"), std::nullopt);
  EXPECT_EQ(tok.pad_id(), -1);
  // load_tokenizer: the file itself, or the directory holding it.
  for (const std::string path : {test::shared(kTokenizer), test::shared("models/llama2-tokenizer")}) {
    auto loaded = llm::load_tokenizer(path);
    ASSERT_NE(dynamic_cast<SentencePieceTokenizer*>(loaded.get()), nullptr) << path;
    EXPECT_EQ(loaded->encode("Hello world"), SentencePieceTokenizer(test::shared(kTokenizer)).encode("Hello world"));
  }
  EXPECT_THROW(SentencePieceTokenizer("/nonexistent/tokenizer.model"), ConfigError);
  test::TempDir dir;
  test::write_text(dir / "bad.model", "not a protobuf");
  EXPECT_THROW(SentencePieceTokenizer(dir / "bad.model"), ConfigError);
}

TEST(Tokenizer, AddedSpecialTokensMatchTransformersAndGrowTheModel) {
  SBTREC_REQUIRE_SHARED(kTokenizer);
  if (!std::filesystem::exists(SBTREC_PYTHON)) GTEST_SKIP() << "missing " << SBTREC_PYTHON << " (run ./scripts/setup.sh)";
  const std::vector<std::string> added = {"[HistoryEmb]", "[CansEmb]", "[PH]"};
  const std::vector<std::string> texts = {
      "[HistoryEmb]", "This user has watched [HistoryEmb] Toy Story, [HistoryEmb] Heat.",
      "candidates:[CansEmb][CansEmb] x", " [PH] leading space", "a[PH]b", "[PH]\n[CansEmb]", "no added tokens here",
      "[History] [HistoryEmb", "<s>[PH]</s>"};
  test::TempDir dir;
  test::write_text(dir / "corpus.json", nlohmann::json(texts).dump());
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/make_tokenizer_fixtures.py") +
                     " --tokenizer " + test::shared(kTokenizer) + " --corpus " + (dir / "corpus.json") + " --out " +
                     (dir / "ref.json") + " --added-tokens \"[HistoryEmb],[CansEmb],[PH]\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = nlohmann::json::parse(test::read_text(dir / "ref.json"));

  SentencePieceTokenizer tok(test::shared(kTokenizer));
  auto cfg = llm::llama_tiny();
  cfg.vocab_size = tok.vocab_size();
  llm::LlamaForCausalLM model(cfg);
  const auto ids = llm::add_special_tokens(tok, *model, added);
  for (size_t i = 0; i < added.size(); ++i) EXPECT_EQ(ids[i], ref["added_tokens"][added[i]].get<int64_t>()) << added[i];
  const int64_t vocab = ref["added_vocab_size"].get<int64_t>();
  EXPECT_EQ(tok.vocab_size(), vocab);
  EXPECT_EQ(model->config.vocab_size, vocab);
  EXPECT_EQ(model->model->embed_tokens->weight.size(0), vocab);
  EXPECT_EQ(model->lm_head->weight.size(0), vocab);
  for (const auto& row : ref["rows"]) {
    const std::string text = row["text"];
    const auto got = tok.encode(text);
    EXPECT_EQ(got, row["added_ids"].get<std::vector<int64_t>>()) << nlohmann::json(text).dump();
    EXPECT_EQ(tok.decode(got, false), row["added_decoded"].get<std::string>()) << nlohmann::json(text).dump();
  }
  // Again: the same ids, nothing grows.
  EXPECT_EQ(llm::add_special_tokens(tok, *model, {"[PH]", "[HistoryEmb]"}), (std::vector<int64_t>{ids[2], ids[0]}));
  EXPECT_EQ(model->config.vocab_size, vocab);
  // Generation is told to leave them out (llama_test's SuppressedTokensAreNeverEmitted checks the effect).
  llm::GenerationOptions o;
  o.suppress_token_ids = {5};
  llm::suppress_added_tokens(tok, o);
  llm::suppress_added_tokens(tok, o);
  EXPECT_EQ(o.suppress_token_ids, (std::vector<int64_t>{5, ids[0], ids[1], ids[2]}));
  // A model smaller than the tokenizer does not belong to it.
  llm::LlamaForCausalLM small(llm::llama_tiny());
  try {
    llm::add_special_tokens(tok, *small, {"[X]"});
    ADD_FAILURE() << "no error for a model with fewer rows than the tokenizer";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer that belongs"), std::string::npos) << e.what();
  }
}
