// Byte-level BPE without the model: a tiny hand-made vocabulary shows the contract (merges by rank,
// added tokens, lossless bytes, lossy UTF-8 decoding, unknown bytes, long inputs), the tokenizer.json
// writer and reader agree, and every unsupported or broken tokenizer.json is a ConfigError naming the
// file and the field. Parity with transformers is bpe_tokenizer_test.cpp's.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/llm/bpe_tokenizer.h"

using namespace sbtrec;
using llm::ByteLevelBpeTokenizer;
using json = nlohmann::json;
using Ids = std::vector<int64_t>;

namespace {

// Bytes 0..255 as ids 0..255, then "Ġt" 256, "he" 257, "Ġthe" 258, "ll" 259, "llo" 260, "ĠĠ" 261,
// and the special "<|end|>" 262 (EOS).
llm::BpeVocabulary tiny() {
  llm::BpeVocabulary v;
  v.source = "tiny";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(llm::to_byte_level(std::string(1, (char)b)));
  auto merge = [&](const std::string& l, const std::string& r) {
    v.merges.push_back(l + " " + r);
    v.tokens.push_back(l + r);
  };
  merge("Ġ", "t");
  merge("h", "e");
  merge("Ġt", "he");
  merge("l", "l");
  merge("ll", "o");
  merge("Ġ", "Ġ");
  v.tokens.push_back("<|end|>");
  v.added_tokens.push_back({"<|end|>", 262, true, false, false, false});
  v.eos_id = 262;
  return v;
}

const std::string kFffd = "\xef\xbf\xbd";

}  // namespace

TEST(BpeTokenizerUnit, MergesByRankAndDecodesBytes) {
  ByteLevelBpeTokenizer tok(tiny());
  EXPECT_EQ(tok.vocab_size(), 263);
  EXPECT_EQ(tok.encode(" the"), (Ids{258}));
  EXPECT_EQ(tok.encode("hello"), (Ids{257, 260}));
  EXPECT_EQ(tok.encode("the<|end|>"), (Ids{'t', 257, 262}));
  EXPECT_EQ(tok.encode("  x"), (Ids{' ', ' ', 'x'}));  // GPT-2's regex leaves the last space to the word
  EXPECT_EQ(tok.encode("a   "), (Ids{'a', 261, ' '}));
  EXPECT_EQ(tok.encode(""), Ids{});
  EXPECT_EQ(tok.encode("x", false), (Ids{'x'}));  // nothing to add: add_bos / add_eos are off
  EXPECT_EQ(tok.decode({258, 262}), " the");
  EXPECT_EQ(tok.decode({258, 262}, false), " the<|end|>");
  EXPECT_EQ(tok.token_to_id("Ġthe"), 258);
  EXPECT_EQ(tok.token_to_id("<|end|>"), 262);
  EXPECT_EQ(tok.token_to_id("the"), std::nullopt);
  EXPECT_EQ(tok.eos_id(), 262);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.pad_id(), -1);
  EXPECT_EQ(tok.newline_ids(), (Ids{'\n'}));

  // Bytes are lossless: every valid UTF-8 text comes back.
  for (const std::string s : {"Hello world", "  two  spaces  ", "a\r\nb\tc", "Café e\u0301 ß", "😀👨‍👩‍👧 中文",
                              "1,000.50 don't I'LL", "\x01\x7f"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  for (const std::string s : {std::string(200000, ' '), std::string(100000, 'l'), std::string(50000, '\n') + "x"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s) << s.size() << " bytes";

  // Invalid UTF-8 is read as Python's errors="replace" would read it; partial characters decode the same way.
  EXPECT_EQ(tok.decode(tok.encode("a\xff\xc3")), "a" + kFffd + kFffd);
  EXPECT_EQ(tok.decode({0xC3}), kFffd);
  EXPECT_EQ(tok.decode({0xE2, 0x96}), kFffd);  // one replacement for a truncated sequence
  EXPECT_EQ(tok.decode({0xE2, 0x96, 0x81}), "\xe2\x96\x81");
  EXPECT_EQ(tok.decode({0xE2, 262, 0x96, 0x81}), "\xe2\x96\x81");  // the skipped token does not split it
  EXPECT_EQ(tok.decode({0xE2, 262, 0x96, 0x81}, false), kFffd + "<|end|>" + kFffd + kFffd);
  EXPECT_EQ(tok.decode({0xED, 0xA0, 0x80}), kFffd + kFffd + kFffd);  // a surrogate is no character
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.decode({263}), Error);
}

TEST(BpeTokenizerUnit, AddedSpecialTokens) {
  ByteLevelBpeTokenizer tok(tiny());
  // New ones get the next ids; a token of the vocabulary ("he") or one added before keeps its id.
  EXPECT_EQ(tok.add_special_tokens({"[X]", "he", "<|end|>", "[Y]"}), (Ids{263, 257, 262, 264}));
  EXPECT_EQ(tok.vocab_size(), 265);
  EXPECT_EQ(tok.added_token_ids(), (Ids{263, 257, 264}));
  EXPECT_EQ(tok.add_special_tokens({"[Y]"}), (Ids{264}));
  EXPECT_EQ(tok.vocab_size(), 265);
  EXPECT_EQ(tok.encode("a[X]b[X]"), (Ids{'a', 263, 'b', 263}));
  EXPECT_EQ(tok.encode("hehe"), (Ids{257, 257}));
  EXPECT_EQ(tok.decode(tok.encode("a[X]he")), "a");
  EXPECT_EQ(tok.decode(tok.encode("a[X]he"), false), "a[X]he");
  EXPECT_EQ(tok.token_to_id("[Y]"), 264);
  EXPECT_EQ(tok.vocabulary().added_tokens.size(), 4u);  // <|end|>, [X], he, [Y]: what a written tokenizer.json carries
  EXPECT_THROW(tok.add_special_tokens({""}), ConfigError);
  EXPECT_THROW(tok.add_special_tokens({"\xff"}), ConfigError);
}

TEST(BpeTokenizerUnit, AddedTokensMatchLongestFirstAndStrip) {
  auto v = tiny();
  v.added_tokens.push_back({"<|e", 263, true, false, false, false});
  v.added_tokens.push_back({"[S]", 264, true, false, true, true});
  ByteLevelBpeTokenizer tok(v);
  EXPECT_EQ(tok.encode("x<|end|>"), (Ids{'x', 262}));
  EXPECT_EQ(tok.encode("x<|en"), (Ids{'x', 263, 'n'}));
  EXPECT_EQ(tok.encode("a  [S]\t b"), (Ids{'a', 264, 'b'}));  // lstrip / rstrip take the white space
}

TEST(BpeTokenizerUnit, BytesMissingFromTheVocabulary) {
  auto v = tiny();
  v.tokens['z'] = "";  // no token for "z"
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("azz b"), (Ids{'a', ' ', 'b'}));  // dropped, as tokenizers without unk_token
  v.unk_id = 0;
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("azz"), (Ids{'a', 0, 0}));
  v.fuse_unk = true;
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("azz"), (Ids{'a', 0}));
}

TEST(BpeTokenizerUnit, PreTokenizers) {
  auto v = tiny();
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("ab12"), (Ids{'a', 'b', '1', '2'}));
  v.pre_tokenizer = "smollm";
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode(" 1"), (Ids{' ', '1'}));
  v.pre_tokenizer = "custom";
  v.pre_split = {"\\s"};
  v.byte_level_regex = false;
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("the the"), (Ids{'t', 257, ' ', 't', 257}));
  v.pre_split = {};
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("the the"), (Ids{'t', 257, 258}));  // one word: " the" merges
  v.pre_tokenizer = "gpt2";
  v.add_prefix_space = true;
  EXPECT_EQ(ByteLevelBpeTokenizer(v).encode("the<|end|>the"), (Ids{258, 262, 258}));  // each piece gets the space
  v.pre_tokenizer = "unheard-of";
  EXPECT_THROW(ByteLevelBpeTokenizer{v}, ConfigError);
  v.pre_tokenizer = "custom";
  v.pre_split = {"("};
  EXPECT_THROW(ByteLevelBpeTokenizer{v}, ConfigError);
}

TEST(BpeTokenizerUnit, GgufVocabularyIsReadAsTransformersReadsIt) {
  auto v = tiny();
  v.tokens.push_back("<ctl>");  // 263: control -> special added token
  v.tokens.push_back("<u d>");  // 264: user-defined, spelled with a space: respelled, not added
  v.tokens.push_back("<c t>");  // 265: control with a space: a llama.cpp mislabel, skipped
  v.tokens.push_back("<user>");  // 266: user-defined -> plain added token
  v.token_types.assign(v.tokens.size(), 1);
  v.token_types[263] = 3, v.token_types[264] = 4, v.token_types[265] = 3, v.token_types[266] = 4;
  ByteLevelBpeTokenizer tok(v);
  EXPECT_EQ(tok.encode("a<ctl><user><u d>"), (Ids{'a', 263, 266, '<', 'u', ' ', 'd', '>'}));
  EXPECT_EQ(tok.decode({263, 266}), "<user>");
  EXPECT_EQ(tok.token_to_id("<uĠd>"), 264);
  EXPECT_EQ(tok.vocabulary().tokens[264], "<uĠd>");
  v.token_types.pop_back();
  EXPECT_THROW(ByteLevelBpeTokenizer{v}, ConfigError);
}

TEST(BpeTokenizerUnit, WrittenTokenizerJsonReadsBack) {
  test::TempDir dir;
  auto v = tiny();
  v.tokens.push_back("<|start|>");
  v.added_tokens.push_back({"<|start|>", 263, true, false, false, false});
  v.added_tokens.push_back({"plain", 264, false, true, true, false});
  v.bos_id = 263;
  v.pad_id = 262;
  v.add_bos = true;
  v.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  for (const char* pre : {"gpt2", "smollm", "custom"}) {
    SCOPED_TRACE(pre);
    v.pre_tokenizer = pre;
    if (v.pre_tokenizer == "custom") {
      v.pre_split = {"\\p{N}+", "[a-z]+|\\s"};
      v.byte_level_regex = false;
      v.add_prefix_space = true;
    }
    llm::write_tokenizer_json(v, dir / pre);
    const auto r = llm::read_tokenizer_json(dir / pre + "/tokenizer.json");
    // The vocabulary also lists the added tokens, pinning their ids for tokenizers.
    ASSERT_EQ(r.tokens.size(), v.tokens.size() + 1);
    EXPECT_EQ(std::vector<std::string>(r.tokens.begin(), r.tokens.end() - 1), v.tokens);
    EXPECT_EQ(r.tokens.back(), "plain");
    EXPECT_EQ(r.merges, v.merges);
    ASSERT_EQ(r.added_tokens.size(), v.added_tokens.size());
    for (size_t i = 0; i < r.added_tokens.size(); ++i) {
      EXPECT_EQ(r.added_tokens[i].content, v.added_tokens[i].content);
      EXPECT_EQ(r.added_tokens[i].id, v.added_tokens[i].id);
      EXPECT_EQ(r.added_tokens[i].special, v.added_tokens[i].special);
      EXPECT_EQ(r.added_tokens[i].normalized, v.added_tokens[i].normalized);
      EXPECT_EQ(r.added_tokens[i].lstrip, v.added_tokens[i].lstrip);
    }
    EXPECT_EQ(r.pre_tokenizer, v.pre_tokenizer);
    EXPECT_EQ(r.pre_split, v.pre_split);
    EXPECT_EQ(r.byte_level_regex, v.byte_level_regex);
    EXPECT_EQ(r.add_prefix_space, v.add_prefix_space);
    EXPECT_EQ(r.bos_id, 263);
    EXPECT_EQ(r.eos_id, 262);
    EXPECT_EQ(r.pad_id, 262);
    EXPECT_TRUE(r.add_bos);
    EXPECT_FALSE(r.add_eos);
    EXPECT_EQ(r.chat_template, v.chat_template);
    EXPECT_EQ(ByteLevelBpeTokenizer(r).encode("the 12 hello<|end|>"), ByteLevelBpeTokenizer(v).encode("the 12 hello<|end|>"));
    EXPECT_EQ(ByteLevelBpeTokenizer(r).encode("x").front(), 263);  // BOS, from the post-processor
  }
}

TEST(BpeTokenizerUnit, LoadTokenizerPicksTheFormat) {
  test::TempDir dir;
  llm::write_tokenizer_json(tiny(), dir / "bpe");
  auto by_dir = llm::load_tokenizer(dir / "bpe");
  ASSERT_NE(dynamic_cast<ByteLevelBpeTokenizer*>(by_dir.get()), nullptr);
  EXPECT_EQ(by_dir->encode(" the"), (Ids{258}));
  EXPECT_NE(dynamic_cast<ByteLevelBpeTokenizer*>(llm::load_tokenizer(dir / "bpe/tokenizer.json").get()), nullptr);
  auto message = [](const std::string& path) -> std::string {
    try {
      llm::load_tokenizer(path);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no ConfigError";
  };
  std::filesystem::create_directories(dir / "empty");
  const std::string empty = message(dir / "empty");
  EXPECT_NE(empty.find("tokenizer.model"), std::string::npos) << empty;
  EXPECT_NE(empty.find("tokenizer.json"), std::string::npos) << empty;
  EXPECT_NE(message(dir / "missing").find("no such file"), std::string::npos);
  test::write_text(dir / "vocab.txt", "x");
  EXPECT_NE(message(dir / "vocab.txt").find("vocab.txt"), std::string::npos);
}

TEST(BpeTokenizerUnit, BadTokenizerJsonIsAConfigErrorNamingFileAndField) {
  test::TempDir dir;
  llm::write_tokenizer_json(tiny(), dir / "good");
  const json good = json::parse(test::read_text(dir / "good/tokenizer.json"));
  int n = 0;
  // Writes `text` as a tokenizer.json and requires a ConfigError naming the file and `field`.
  auto expect_refused = [&](const std::string& text, const std::string& field) {
    const std::string path = dir / ("case" + std::to_string(n++) + "/tokenizer.json");
    test::write_text(path, text);
    try {
      llm::read_tokenizer_json(path);
      ByteLevelBpeTokenizer::from_tokenizer_json(path);
      ADD_FAILURE() << "no ConfigError for " << field;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find(field), std::string::npos) << what;
    }
  };
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return j.dump();
  };
  expect_refused("{not json", "not valid JSON");
  expect_refused("[1, 2]", "JSON object");
  expect_refused(with([](json& j) { j["model"]["type"] = "WordPiece"; }), "model.type");
  expect_refused(with([](json& j) { j["model"].erase("vocab"); }), "model.vocab");
  expect_refused(with([](json& j) { j["model"]["vocab"]["Ġthe"] = "x"; }), "model.vocab");
  expect_refused(with([](json& j) { j.erase("model"); }), "model");
  expect_refused(with([](json& j) { j["model"]["merges"].push_back({"Ġ", "zzz"}); }), "zzz");
  expect_refused(with([](json& j) { j["model"]["merges"] = json::array({"Ġt"}); }), "merge 0");
  expect_refused(with([](json& j) { j["model"]["merges"] = json::array({42}); }), "model.merges[0]");
  expect_refused(with([](json& j) { j["model"]["byte_fallback"] = true; }), "model.byte_fallback");
  expect_refused(with([](json& j) { j["model"]["dropout"] = 0.1; }), "model.dropout");
  expect_refused(with([](json& j) { j["model"]["unk_token"] = "<nope>"; }), "model.unk_token");
  expect_refused(with([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}}; }),
                 "pre_tokenizer.type");
  expect_refused(with([](json& j) { j["pre_tokenizer"] = nullptr; }), "pre_tokenizer");
  expect_refused(with([](json& j) {
                   j["pre_tokenizer"] = {{"type", "Sequence"},
                                         {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "("}}},
                                                             {"behavior", "Isolated"}, {"invert", false}},
                                                            {{"type", "ByteLevel"}, {"use_regex", false}}}}};
                 }),
                 "does not compile");
  expect_refused(with([](json& j) {
                   j["pre_tokenizer"] = {{"type", "Sequence"},
                                         {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "x"}}},
                                                             {"behavior", "Removed"}, {"invert", false}},
                                                            {{"type", "ByteLevel"}}}}};
                 }),
                 "pretokenizers[0].behavior");
  expect_refused(with([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }), "normalizer");
  expect_refused(with([](json& j) { j["decoder"] = {{"type", "Metaspace"}}; }), "decoder");
  expect_refused(with([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }), "post_processor.type");
  expect_refused(with([](json& j) { j["added_tokens"][0]["single_word"] = true; }), "added_tokens[0].single_word");
  expect_refused(with([](json& j) { j["added_tokens"][0]["id"] = -5; }), "outside");

  // tokenizer_config.json beside it is read too.
  const std::string cfg_dir = dir / "with_config";
  test::write_text(cfg_dir + "/tokenizer.json", good.dump());
  test::write_text(cfg_dir + "/tokenizer_config.json", R"({"bos_token": "<|nope|>"})");
  try {
    llm::read_tokenizer_json(cfg_dir + "/tokenizer.json");
    ADD_FAILURE() << "no ConfigError for an unknown bos_token";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json: bos_token"), std::string::npos) << e.what();
  }
  EXPECT_THROW(llm::read_tokenizer_json(dir / "nothing-here/tokenizer.json"), ConfigError);
}
