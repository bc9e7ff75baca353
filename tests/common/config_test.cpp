// Config: defaults, presets, overrides, and errors that name the key path and the file.
#include "sbtrec/common/config.h"

#include "../test_util.h"
#include "sbtrec/common/error.h"

using namespace sbtrec;

namespace {
std::string error_of(const std::string& yaml, std::vector<std::string> sets = {}) {
  try {
    parse_config(yaml, "cfg.yaml", sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsFollowPaperAndLLaRA) {
  Config c = parse_config("", "x");
  EXPECT_EQ(c.model.type, "sasrec");
  EXPECT_EQ(c.model.hidden_size, 64);
  EXPECT_EQ(c.model.sasrec.num_blocks, 1);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.eval.num_negatives, 20);
  EXPECT_EQ(c.data.min_history, 3);
}

TEST(Config, LLaRAPresetUses19NegativesAndExplicitKeysWin) {
  EXPECT_EQ(parse_config("preset: llara\n", "x").eval.num_negatives, 19);
  EXPECT_EQ(parse_config("preset: llara\neval: {num_negatives: 7}\n", "x").eval.num_negatives, 7);
  EXPECT_EQ(parse_config("", "x", {"preset=llara"}).eval.num_negatives, 19);
  EXPECT_NE(error_of("preset: foo\n").find("unknown preset 'foo'"), std::string::npos);
}

TEST(Config, UnknownKeyNamesFullPathFileAndLine) {
  const auto e = error_of("seed: 1\nmodel:\n  sasrec:\n    num_blokcs: 2\n");
  EXPECT_NE(e.find("'model.sasrec.num_blokcs'"), std::string::npos) << e;
  EXPECT_NE(e.find("cfg.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
}

TEST(Config, WrongTypesAreErrors) {
  auto e = error_of("train:\n  epochs: many\n");
  EXPECT_NE(e.find("'train.epochs'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  e = error_of("model: 3\n");
  EXPECT_NE(e.find("'model'"), std::string::npos) << e;
  e = error_of("model:\n  caser:\n    filter_sizes: 3\n");
  EXPECT_NE(e.find("list of integers"), std::string::npos) << e;
  e = error_of("train:\n  lr: [1, 2]\n");
  EXPECT_NE(e.find("'train.lr'"), std::string::npos) << e;
  e = error_of("seed: [\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(Config, SetOverridesAndReportsItsOwnErrors) {
  Config c = parse_config("train: {epochs: 5}\n", "x", {"train.epochs=9", "model.caser.filter_sizes=[2, 5]", "output_dir=out"});
  EXPECT_EQ(c.train.epochs, 9);
  EXPECT_EQ(c.model.caser.filter_sizes, (std::vector<int>{2, 5}));
  EXPECT_EQ(c.output_dir, "out");
  auto e = error_of("", {"train.epochz=3"});
  EXPECT_NE(e.find("'train.epochz'"), std::string::npos) << e;
  EXPECT_NE(e.find("--set"), std::string::npos) << e;
  e = error_of("", {"train.epochs=abc"});
  EXPECT_NE(e.find("--set train.epochs"), std::string::npos) << e;
  EXPECT_NE(error_of("", {"novalue"}).find("KEY=VALUE"), std::string::npos);
}

TEST(Config, ValidationNamesTheKey) {
  EXPECT_NE(error_of("model: {type: bert}\n").find("'model.type'"), std::string::npos);
  EXPECT_NE(error_of("model: {sasrec: {num_heads: 3}}\n").find("'model.sasrec.num_heads'"), std::string::npos);
  EXPECT_NE(error_of("train: {batch_size: 0}\n").find("'train.batch_size'"), std::string::npos);
  EXPECT_NE(error_of("data: {format: csv}\n").find("'data.format'"), std::string::npos);
  EXPECT_NE(error_of("model: {gru4rec: {dropout: 1.5}}\n").find("'model.gru4rec.dropout'"), std::string::npos);
  EXPECT_DOUBLE_EQ(parse_config("model: {gru4rec: {dropout: 0.25}}\n", "x").model.gru4rec.dropout, 0.25);
  EXPECT_DOUBLE_EQ(parse_config("", "x").model.gru4rec.dropout, 0.0);  // LLaRA's GRU4Rec has no dropout
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("seed: 5\nmodel: {type: caser, caser: {filter_sizes: [1, 2]}}\ndata: {root: /x}\n", "x");
  const std::string y = config_to_yaml(c);
  Config d = parse_config(y, "dump");
  EXPECT_EQ(config_to_yaml(d), y);
  EXPECT_EQ(d.seed, 5u);
  EXPECT_EQ(d.model.type, "caser");
  EXPECT_EQ(parse_model_section(y, "dump").caser.filter_sizes, (std::vector<int>{1, 2}));
}

TEST(Config, DataRootFallsBackToEnvironment) {
  setenv("SBTREC_DATA", "/some/where", 1);
  EXPECT_EQ(parse_config("", "x").data.root, "/some/where");
  unsetenv("SBTREC_DATA");
  EXPECT_EQ(parse_config("", "x").data.root, "data/ml-100k");
  EXPECT_EQ(parse_config("data: {root: mine}", "x").data.root, "mine");
}

TEST(Config, MissingFileIsAClearError) {
  try {
    load_config("/nonexistent/cfg.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cfg.yaml"), std::string::npos);
  }
}
