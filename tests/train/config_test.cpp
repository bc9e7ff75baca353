// Config: defaults, presets, overrides, every field type of the visitor, checks carried by the
// fields, renamed keys, errors that name the key path and the file:line, and the key reference.
#include "sbtrec/config/config.h"

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/encoder/encoder.h"

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
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Sets an environment variable for one scope and restores what was there before.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char* n, const char* value) : name(n) {
    if (const char* o = std::getenv(n)) old = o;
    value ? setenv(n, value, 1) : unsetenv(n);
  }
  ~ScopedEnv() { old ? setenv(name.c_str(), old->c_str(), 1) : unsetenv(name.c_str()); }
};

// One struct with every field type the visitor supports.
enum class Colour { kRed, kBlue };
struct AllTypes {
  bool flag = false;
  int i = 1;
  int64_t big = 1;
  uint64_t u = 1;
  double x = 0.5;
  std::string s = "a";
  std::vector<int> vi = {1};
  std::vector<std::string> vs = {"q_proj"};
  Colour colour = Colour::kRed;
};
void visit_fields(AllTypes& o, config::Visitor& v) {
  v.field("flag", o.flag, "a bool");
  v.field("i", o.i, "an int", config::at_least(0));
  v.field("big", o.big, "an int64", config::at_least<int64_t>(1));
  v.field("u", o.u, "a uint64");
  v.field("x", o.x, "a double", config::in_half_open(0, 1));
  v.field("s", o.s, "a string", config::not_empty());
  v.field("vi", o.vi, "ints", config::each_at_least(1, true));
  v.field("vs", o.vs, "strings", config::each_one_of({"q_proj", "v_proj"}, true));
  v.field("colour", o.colour, "an enum", config::Choices<Colour>{{"red", Colour::kRed}, {"blue", Colour::kBlue}});
}
}  // namespace

TEST(Config, DefaultsFollowPaperAndLLaRA) {
  ScopedEnv env("SBTREC_DATA", nullptr);
  Config c = parse_config("", "x");
  EXPECT_EQ(c.encoder.type, EncoderType::kSASRec);
  EXPECT_EQ(c.encoder.hidden_size, 64);
  EXPECT_EQ(c.encoder.sasrec.num_blocks, 1);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.eval.num_negatives, 20);
  EXPECT_EQ(c.data.min_history, 3);
  EXPECT_EQ(c.lora.r, 8);
  EXPECT_EQ(c.generation.max_new_tokens, 64);
  EXPECT_EQ(c.llm.device, "cpu");
}

TEST(Config, LLaRAPresetUses19NegativesAndExplicitKeysWin) {
  EXPECT_EQ(parse_config("preset: llara\n", "x").eval.num_negatives, 19);
  EXPECT_EQ(parse_config("preset: llara\neval: {num_negatives: 7}\n", "x").eval.num_negatives, 7);
  EXPECT_EQ(parse_config("", "x", {"preset=llara"}).eval.num_negatives, 19);
  EXPECT_TRUE(has(error_of("preset: foo\n"), "must be one of paper, llara (got 'foo')"));
}

TEST(Config, UnknownKeyNamesFullPathFileAndLine) {
  const auto e = error_of("seed: 1\nencoder:\n  sasrec:\n    num_blokcs: 2\n");
  EXPECT_TRUE(has(e, "'encoder.sasrec.num_blokcs'")) << e;
  EXPECT_TRUE(has(e, "cfg.yaml:4")) << e;
  EXPECT_TRUE(has(e, "unknown key")) << e;
}

TEST(Config, RenamedModelSectionSaysWhatToDo) {
  const auto e = error_of("seed: 1\nmodel:\n  type: sasrec\n");
  EXPECT_TRUE(has(e, "'model'")) << e;
  EXPECT_TRUE(has(e, "renamed to 'encoder'")) << e;
  EXPECT_TRUE(has(e, "cfg.yaml:2")) << e;
}

TEST(Config, WrongTypesAreErrors) {
  auto e = error_of("train:\n  epochs: many\n");
  EXPECT_TRUE(has(e, "'train.epochs'")) << e;
  EXPECT_TRUE(has(e, "expected an integer")) << e;
  e = error_of("encoder: 3\n");
  EXPECT_TRUE(has(e, "'encoder'")) << e;
  e = error_of("encoder:\n  caser:\n    filter_sizes: 3\n");
  EXPECT_TRUE(has(e, "list of integers")) << e;
  e = error_of("train:\n  lr: [1, 2]\n");
  EXPECT_TRUE(has(e, "'train.lr'")) << e;
  e = error_of("seed: [\n");
  EXPECT_TRUE(has(e, "invalid YAML")) << e;
  e = error_of("llm: {activation_checkpointing: maybe}\n");
  EXPECT_TRUE(has(e, "'llm.activation_checkpointing'") && has(e, "true or false")) << e;
  e = error_of("lora: {target_modules: [q_proj, [x]]}\n");
  EXPECT_TRUE(has(e, "'lora.target_modules'") && has(e, "list of strings")) << e;
}

TEST(Config, SetOverridesAndReportsItsOwnErrors) {
  Config c = parse_config("train: {epochs: 5}\n", "x", {"train.epochs=9", "encoder.caser.filter_sizes=[2, 5]", "output_dir=out"});
  EXPECT_EQ(c.train.epochs, 9);
  EXPECT_EQ(c.encoder.caser.filter_sizes, (std::vector<int>{2, 5}));
  EXPECT_EQ(c.output_dir, "out");
  auto e = error_of("", {"train.epochz=3"});
  EXPECT_TRUE(has(e, "'train.epochz'")) << e;
  EXPECT_TRUE(has(e, "--set")) << e;
  e = error_of("", {"train.epochs=abc"});
  EXPECT_TRUE(has(e, "--set train.epochs")) << e;
  e = error_of("", {"train.batch_size=0"});
  EXPECT_TRUE(has(e, "--set train.batch_size") && has(e, "must be >= 1")) << e;
  EXPECT_TRUE(has(error_of("", {"novalue"}), "KEY=VALUE"));
}

TEST(Config, ChecksCarriedByFieldsNameTheKeyAndLine) {
  auto e = error_of("encoder: {type: bert}\n");
  EXPECT_TRUE(has(e, "'encoder.type'") && has(e, "must be one of sasrec, gru4rec, caser (got 'bert')")) << e;
  e = error_of("encoder:\n  hidden_size: 64\n  sasrec: {num_heads: 3}\n");
  EXPECT_TRUE(has(e, "'encoder.sasrec.num_heads'") && has(e, "divide") && has(e, "cfg.yaml:3")) << e;
  EXPECT_TRUE(has(error_of("train: {batch_size: 0}\n"), "'train.batch_size'"));
  EXPECT_TRUE(has(error_of("data: {format: csv}\n"), "'data.format'"));
  EXPECT_TRUE(has(error_of("encoder: {gru4rec: {dropout: 1.5}}\n"), "'encoder.gru4rec.dropout'"));
  EXPECT_TRUE(has(error_of("encoder: {max_len: 5}\n"), "'encoder.max_len'"));  // < data.max_history
  EXPECT_TRUE(has(error_of("encoder: {caser: {filter_sizes: [2, 11]}}\n"), "'encoder.caser.filter_sizes'"));
  EXPECT_TRUE(has(error_of("llm: {device: gpu0}\n"), "'llm.device'"));
  EXPECT_TRUE(has(error_of("lora: {target_modules: [q_proj, lm_head]}\n"), "'lm_head' is not one of"));
  EXPECT_TRUE(has(error_of("lora: {r: 0}\n"), "'lora.r'"));
  EXPECT_TRUE(has(error_of("train: {monitor: [auc]}\n"), "'train.monitor'"));
  EXPECT_TRUE(has(error_of("generation: {early_stopping: sometimes}\n"), "'generation.early_stopping'"));
  EXPECT_TRUE(has(error_of("output_dir: ''\n"), "'output_dir'"));
  EXPECT_DOUBLE_EQ(parse_config("encoder: {gru4rec: {dropout: 0.25}}\n", "x").encoder.gru4rec.dropout, 0.25);
  EXPECT_DOUBLE_EQ(parse_config("", "x").encoder.gru4rec.dropout, 0.0);  // LLaRA's GRU4Rec has no dropout
}

TEST(Config, EveryFieldTypeReadsWritesAndChecks) {
  AllTypes a;
  config::read_yaml(
      "flag: true\ni: 3\nbig: 9000000000\nu: 18446744073709551615\nx: 0.25\ns: hi\nvi: [2, 3]\nvs: [v_proj]\ncolour: blue\n",
      "t.yaml", {}, config::visiting(a));
  EXPECT_TRUE(a.flag);
  EXPECT_EQ(a.i, 3);
  EXPECT_EQ(a.big, 9000000000LL);
  EXPECT_EQ(a.u, 18446744073709551615ULL);
  EXPECT_DOUBLE_EQ(a.x, 0.25);
  EXPECT_EQ(a.s, "hi");
  EXPECT_EQ(a.vi, (std::vector<int>{2, 3}));
  EXPECT_EQ(a.vs, (std::vector<std::string>{"v_proj"}));
  EXPECT_EQ(a.colour, Colour::kBlue);
  AllTypes b;
  config::read_yaml(config::to_yaml(config::visiting(a)), "dump", {}, config::visiting(b));
  EXPECT_EQ(config::to_yaml(config::visiting(b)), config::to_yaml(config::visiting(a)));
  EXPECT_EQ(b.u, a.u);
  EXPECT_EQ(b.colour, Colour::kBlue);
  auto err = [](const std::string& y) {
    AllTypes t;
    try {
      config::read_yaml(y, "t.yaml", {}, config::visiting(t));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_TRUE(has(err("big: 0\n"), "'big' (t.yaml:1): must be >= 1"));
  EXPECT_TRUE(has(err("x: 1\n"), "must be in [0, 1)"));
  EXPECT_TRUE(has(err("vi: []\n"), "at least one"));
  EXPECT_TRUE(has(err("vs: [k_proj]\n"), "'k_proj' is not one of"));
  EXPECT_TRUE(has(err("colour: green\n"), "must be one of red, blue (got 'green')"));
  EXPECT_TRUE(has(err("u: -1\n"), "non-negative integer"));
  EXPECT_TRUE(has(err("flag: 2\n"), "true or false"));
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("seed: 5\nencoder: {type: caser, caser: {filter_sizes: [1, 2]}}\ndata: {root: /x}\n"
                          "lora: {target_modules: [q_proj, v_proj]}\nllm: {dtype: bf16, activation_checkpointing: true}\n",
                          "x");
  const std::string y = config_to_yaml(c);
  Config d = parse_config(y, "dump");
  EXPECT_EQ(config_to_yaml(d), y);
  EXPECT_EQ(d.seed, 5u);
  EXPECT_EQ(d.encoder.type, EncoderType::kCaser);
  EXPECT_EQ(d.lora.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(d.llm.dtype, llm::LlmDtype::kBFloat16);
  EXPECT_TRUE(d.llm.activation_checkpointing);
  EXPECT_EQ(encoder::parse_encoder_section(y, "dump").caser.filter_sizes, (std::vector<int>{1, 2}));
}

TEST(Config, CheckpointEncoderSectionOldNameAndChecks) {
  // Checkpoints written before the rename say `model:`; they still load.
  EXPECT_EQ(encoder::parse_encoder_section("model: {type: gru4rec}\n", "old.yaml").type, EncoderType::kGRU4Rec);
  EXPECT_THROW(encoder::parse_encoder_section("seed: 1\n", "none.yaml"), CheckpointError);
  EXPECT_THROW(encoder::parse_encoder_section("encoder: {hidden_size: 64, sasrec: {num_heads: 5}}\n", "bad.yaml"), ConfigError);
}

TEST(Config, DataRootFallsBackToEnvironment) {
  {
    ScopedEnv env("SBTREC_DATA", "/some/where");
    EXPECT_EQ(parse_config("", "x").data.root, "/some/where");
  }
  ScopedEnv env("SBTREC_DATA", nullptr);
  EXPECT_EQ(parse_config("", "x").data.root, "data/ml-100k");
  EXPECT_EQ(parse_config("data: {root: mine}", "x").data.root, "mine");
}

TEST(Config, MissingFileIsAClearError) {
  try {
    load_config("/nonexistent/cfg.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "/nonexistent/cfg.yaml"));
  }
}

TEST(Config, ReadmeReferenceIsGeneratedFromTheStructs) {
  // configs/README.md embeds the reference between two markers; regenerate it with
  // scripts/update_config_reference.sh after adding a key.
  const std::string readme = test::read_text(test::source("configs/README.md"));
  const std::string begin = "<!-- BEGIN GENERATED: sbtrec-train --config-reference -->\n";
  const std::string end = "<!-- END GENERATED -->";
  const auto b = readme.find(begin), e = readme.find(end);
  ASSERT_NE(b, std::string::npos) << "configs/README.md lacks the generated-reference markers";
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(readme.substr(b + begin.size(), e - b - begin.size()), config_reference_markdown())
      << "configs/README.md is stale: run scripts/update_config_reference.sh";
  const std::string ref = config_reference_markdown();
  for (const char* key : {"`encoder.sasrec.num_heads`", "`llm.dtype`", "`lora.target_modules`", "`generation.num_beams`",
                          "`train.monitor`", "`eval.candidate_seed`", "| `model` | `encoder` |"})
    EXPECT_TRUE(has(ref, key)) << key;
}

// Relative paths in a config file resolve against the file that wrote them (as `base:` does), through
// a base chain in another directory; --set values stay as given. A run's written config.yaml holds
// absolute inputs and output_dir ".", so it stays valid when the run directory moves.
TEST(Config, RelativePathsResolveAgainstTheirFileAndWrittenConfigsMove) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path / "a");
  std::filesystem::create_directories(dir.path / "b");
  test::write_text(dir / "a/base.yaml", "output_dir: out\ndata: {root: ../d}\nencoder: {checkpoint: enc}\n");
  test::write_text(dir / "b/child.yaml", "base: ../a/base.yaml\nprompt: {templates: t.txt}\nllm: {model: default}\n");
  const std::string root = std::filesystem::path(dir.path).lexically_normal().string();
  auto c = load_config(dir / "b/child.yaml");
  EXPECT_EQ(c.output_dir, root + "/a/out");
  EXPECT_EQ(c.data.root, root + "/d");
  EXPECT_EQ(c.encoder.checkpoint, root + "/a/enc");
  EXPECT_EQ(c.prompt.templates, root + "/b/t.txt");
  EXPECT_EQ(c.llm.model, "default");  // a name, not a path
  c = load_config(dir / "b/child.yaml", {"data.root=rel/d"});
  EXPECT_EQ(c.data.root, "rel/d");  // --set: relative to the working directory

  // Written for the run directory: output_dir "." and every input absolute; moved, it still reads.
  std::filesystem::create_directories(dir.path / "run");
  c.output_dir = dir / "run";  // a run writes its config into its own directory
  test::write_text(dir / "run/config.yaml", config_to_yaml(c, dir / "run"));
  EXPECT_EQ(parse_config(test::read_text(dir / "run/config.yaml"), "written").output_dir, ".");
  std::filesystem::rename(dir.path / "run", dir.path / "moved");
  const auto m = load_config(dir / "moved/config.yaml");
  EXPECT_EQ(m.output_dir, root + "/moved");
  EXPECT_EQ(m.prompt.templates, root + "/b/t.txt");
  EXPECT_EQ(m.encoder.checkpoint, root + "/a/enc");
  EXPECT_TRUE(std::filesystem::path(m.data.root).is_absolute()) << m.data.root;
}
