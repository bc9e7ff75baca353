// The programs' exact command forms, their outputs, and their behaviour on bad input (non-zero exit,
// a message naming the file/key, nothing half-written).
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "../test_util.h"
#include "sbtrec_fixture.h"
#include "sbtrec/common/core_share.h"
#include "sbtrec/config/config.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/train/recipes.h"

#include <map>

using namespace sbtrec;

namespace {
std::string last_line(const std::string& s) {
  std::istringstream in(s);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}
size_t count_lines(const std::string& s) { return (size_t)std::count(s.begin(), s.end(), '\n'); }
// LLaRA's MovieLens SASRec imported into `out`.
test::CommandResult import_llara_movielens(const std::string& out) {
  return test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/import_llara_checkpoint.py") +
                   " --checkpoint " + test::shared("models/llara-rec-models/movielens.pt") + " --out " + out);
}
std::string ml_config() { return test::source("configs/movielens/sasrec.yaml") + " --set data.root=" + test::shared("data/ml-100k"); }
}  // namespace

TEST(CLI, DataExportAndStatsOnMovieLens) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  for (const char* split : {"train", "val", "test"}) {
    auto r = test::run(test::bin("sbtrec-data") + " export --config " + ml_config() + " --split " + split + " --out " +
                       (dir / split));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const std::string test_text = test::read_text(dir / "test");
  EXPECT_EQ(count_lines(test_text), 95u);
  EXPECT_EQ(count_lines(test::read_text(dir / "val")), 94u);
  const std::regex line(R"(\d+\t\d+( \d+){2,9}\t\d+)");
  std::istringstream in(test_text);
  for (std::string l; std::getline(in, l);) EXPECT_TRUE(std::regex_match(l, line)) << l;
  auto r = test::run(test::bin("sbtrec-data") + " stats --config " + ml_config());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("users        943"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("items        1682"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("val 94, test 95"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train " + std::to_string(count_lines(test::read_text(dir / "train")))), std::string::npos);
}

// --candidates adds the candidate column; scripts/sbtrec_io.py recomputes it from the exported samples
// (MovieLens internal id = raw id - 1), so Python-side tools can rebuild the evaluation sets.
TEST(CLI, DataExportCandidatesMatchThePythonMirror) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " export --config " + ml_config() +
                     " --set eval.num_negatives=7 --set eval.candidate_seed=11 --split test --candidates --out " +
                     (dir / "test.tsv"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::regex line(R"(\d+\t\d+( \d+){2,9}\t(\d+)\t\d+( \d+){7})");
  std::istringstream in(test::read_text(dir / "test.tsv"));
  int lines = 0;
  for (std::string l; std::getline(in, l); ++lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, line)) << l;
    EXPECT_NE((" " + l.substr(l.rfind('\t') + 1) + " ").find(" " + m[2].str() + " "), std::string::npos) << l;
  }
  EXPECT_EQ(lines, 95);
  r = test::run_python(dir, R"(
from sbtrec_io import candidate_lists
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
samples = [([int(h) - 1 for h in row[1].split()], int(row[2]) - 1) for row in rows]
drawn = candidate_lists(samples, 1682, 7, 11, "test")
bad = [i for i, (row, c) in enumerate(zip(rows, drawn)) if [int(x) - 1 for x in row[3].split()] != c]
print("mismatched rows:", bad)
sys.exit(1 if bad else 0)
)", dir / "test.tsv");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(CLI, TrainThenEvalJsonOnSyntheticData) {
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 120 --items 150");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string common = " --config " + test::source("configs/movielens/sasrec.yaml") + " --set data.root=" +
                             (dir / "syn") + " --set output_dir=" + (dir / "run");
  r = test::run(test::bin("sbtrec-train") + common + " --set train.epochs=3 --set seed=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("HR@1"), std::string::npos) << r.output;
  for (const char* f : {"config.yaml", "metrics.jsonl", "results.json", "checkpoint/model.safetensors", "checkpoint/config.yaml"})
    EXPECT_TRUE(std::filesystem::exists(dir / (std::string("run/") + f))) << f;
  EXPECT_NE(test::read_text(dir / "run/config.yaml").find("epochs: 3"), std::string::npos);
  r = test::run_stdout(test::bin("sbtrec-eval") + common + " --checkpoint " + (dir / "run/checkpoint") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(last_line(r.output));
  for (const char* key : {"hr@1", "valid_ratio", "n", "ndcg@10", "hr@10"}) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["n"].get<int>(), 12);  // 120 users: int(0.9*120) = 108 -> 12 test users
  EXPECT_EQ(j["num_candidates"].get<int>(), 20);  // configs/movielens use the llara preset (19 + target)
  // Same candidates, same checkpoint: a second evaluation prints the identical line.
  auto again = test::run_stdout(test::bin("sbtrec-eval") + common + " --checkpoint " + (dir / "run/checkpoint") + " --json");
  EXPECT_EQ(last_line(again.output), last_line(r.output));
  // The run directory itself is accepted as --checkpoint.
  auto via_run = test::run_stdout(test::bin("sbtrec-eval") + common + " --checkpoint " + (dir / "run") + " --json");
  ASSERT_EQ(via_run.exit_code, 0) << via_run.output;
  auto jr = nlohmann::json::parse(last_line(via_run.output));
  EXPECT_EQ(jr["hr@1"], j["hr@1"]);
  // A checkpoint written before the rename (config.yaml says `model:`) still loads, with a note.
  std::string cfg = test::read_text(dir / "run/checkpoint/config.yaml");
  cfg.replace(cfg.find("\nencoder:"), 9, "\nmodel:");
  test::write_text(dir / "run/checkpoint/config.yaml", cfg);
  auto old = test::run(test::bin("sbtrec-eval") + common + " --checkpoint " + (dir / "run") + " --json");
  ASSERT_EQ(old.exit_code, 0) << old.output;
  EXPECT_NE(old.output.find("'model:' section"), std::string::npos) << old.output;
  EXPECT_EQ(nlohmann::json::parse(last_line(old.output))["hr@1"], j["hr@1"]);
}

TEST(CLI, UsedOutputDirIsRefusedUnlessOverwriteWhichStartsAFreshLog) {
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 120 --items 150");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cmd = test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                          " --set data.root=" + (dir / "syn") + " --set output_dir=" + (dir / "run") +
                          " --set train.epochs=2 --json";
  r = test::run_stdout(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto results = nlohmann::json::parse(last_line(r.output));
  EXPECT_EQ(results["output_dir"], dir / "run");
  EXPECT_EQ(results, nlohmann::json::parse(test::read_text(dir / "run/results.json")));
  const std::string first_log = test::read_text(dir / "run/metrics.jsonl");
  r = test::run(cmd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(dir / "run/metrics.jsonl"), first_log);  // untouched
  r = test::run(cmd + " --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Same seed, same data: the fresh log has the same number of records, not twice as many.
  EXPECT_EQ(count_lines(test::read_text(dir / "run/metrics.jsonl")), count_lines(first_log));
}

TEST(CLI, DumpConfigShowsResolvedValues) {
  auto r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/gru4rec.yaml") +
                     " --set train.lr=0.005 --dump-config");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("type: gru4rec"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("encoder:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lr: 0.005"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("num_negatives: 19"), std::string::npos) << r.output;
}

TEST(CLI, BadInputExitsNonZeroWithAClearMessageAndNoOutput) {
  test::TempDir dir;
  test::write_text(dir / "bad.yaml", "train:\n  epoch: 3\n");
  auto r = test::run(test::bin("sbtrec-train") + " --config " + (dir / "bad.yaml") + " --set output_dir=" + (dir / "out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("'train.epoch'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:2"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                " --set data.root=" + (dir / "none") + " --set output_dir=" + (dir / "out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("grouplens.org"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  // A key the recipe does not read (a step cap on an encoder run) is refused, not ignored.
  r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                " --set train.max_steps=5 --set output_dir=" + (dir / "out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("train.max_steps is not read by the encoder recipe"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  r = test::run(test::bin("sbtrec-data") + " export --config " + test::source("configs/movielens/sasrec.yaml") +
                " --set data.root=" + (dir / "none") + " --split test --out " + (dir / "x.tsv"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.tsv"));
  r = test::run(test::bin("sbtrec-eval") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                " --checkpoint " + (dir / "nockpt"));
  EXPECT_EQ(r.exit_code, 1);
  r = test::run(test::bin("sbtrec-data") + " export --config " + test::source("configs/movielens/sasrec.yaml") +
                " --split nope --out x");
  EXPECT_EQ(r.exit_code, 1);  // command-line mistakes exit 1 like every other error
  r = test::run(test::bin("sbtrec-train") + " --no-such-flag");
  EXPECT_EQ(r.exit_code, 1);
  r = test::run(test::bin("sbtrec-eval") + " --help");
  EXPECT_EQ(r.exit_code, 0);
}

TEST(CLI, EvaluatesImportedLLaRASASRecOnMovieLens) {
  SBTREC_REQUIRE_SHARED("models/llara-rec-models/movielens.pt");
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  auto r = import_llara_movielens(dir / "ckpt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run(test::bin("sbtrec-eval") + " --config " + ml_config() + " --checkpoint " + (dir / "ckpt") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(last_line(r.output));
  EXPECT_EQ(j["n"].get<int>(), 95);
  EXPECT_GT(j["hr@1"].get<double>(), 0.25) << r.output;  // LLaRA's checkpoint; chance is 0.05
  // The MovieLens checkpoint on a dataset with another item count: error naming the tensor.
  r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 60 --items 100");
  r = test::run(test::bin("sbtrec-eval") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                " --set data.root=" + (dir / "syn") + " --checkpoint " + (dir / "ckpt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("item_embeddings.weight"), std::string::npos) << r.output;
}

// eval.noise (RQ5): SASRec evaluated clean and with an off-genre item at the end of each test history
// scores the same cases and candidates (its per-case predictions pair), the noisy histories are those
// sbtrec-data export writes, and training refuses the evaluation setting.
TEST(CLI, NoisyEvaluationPairsWithCleanAndExports) {
  SBTREC_REQUIRE_SHARED("models/llara-rec-models/movielens.pt");
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  auto r = import_llara_movielens(dir / "ckpt");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string noisy = " --set eval.noise.kind=off_genre --set eval.noise.count=1 --set eval.noise.position=end";
  r = test::run(test::bin("sbtrec-eval") + " --config " + ml_config() + " --checkpoint " + (dir / "ckpt") +
                " --predictions " + (dir / "clean.jsonl") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double clean_hr = nlohmann::json::parse(last_line(r.output))["hr@1"].get<double>();
  r = test::run(test::bin("sbtrec-eval") + " --config " + ml_config() + noisy + " --checkpoint " + (dir / "ckpt") +
                " --predictions " + (dir / "noisy.jsonl") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(last_line(r.output));
  EXPECT_EQ(j["noise"], "off_genre x 1 at end, seed 2024");
  const auto c = test::read_jsonl(dir / "clean.jsonl"), n = test::read_jsonl(dir / "noisy.jsonl");
  ASSERT_EQ(c.size(), 95u);
  ASSERT_EQ(n.size(), c.size());
  size_t hits = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(n[i]["candidates"], c[i]["candidates"]) << i;
    EXPECT_EQ(n[i]["target"], c[i]["target"]) << i;
    EXPECT_FALSE(c[i].contains("noise"));
    EXPECT_EQ(n[i]["noise"], "test: off_genre x 1 at end, seed 2024");
    const auto ch = c[i]["history"].get<std::vector<int64_t>>(), nh = n[i]["history"].get<std::vector<int64_t>>();
    ASSERT_EQ(nh.size(), ch.size()) << "MovieLens test histories are at the window cap (10)";
    EXPECT_EQ(std::vector<int64_t>(nh.begin(), nh.end() - 1), std::vector<int64_t>(ch.begin() + 1, ch.end())) << i;
    EXPECT_EQ(std::count(ch.begin(), ch.end(), nh.back()), 0) << i;
    EXPECT_EQ(c[i]["hit"], c[i]["rank"] == 0);
    hits += c[i]["hit"].get<bool>();
  }
  EXPECT_DOUBLE_EQ(clean_hr, hits / 95.0) << "the per-case records are the metric's cases";
  // The exported noisy histories are those evaluated.
  r = test::run(test::bin("sbtrec-data") + " export --config " + ml_config() + noisy + " --split test --out " + (dir / "x.tsv"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream in(test::read_text(dir / "x.tsv"));
  std::string line;
  for (size_t i = 0; std::getline(in, line); ++i) {
    std::istringstream f(line.substr(line.find('\t') + 1));
    std::vector<int64_t> h;
    for (int64_t x; f >> x;) h.push_back(x);
    h.pop_back();  // the target
    EXPECT_EQ(h, n[i]["history"].get<std::vector<int64_t>>()) << line;
  }
  // Training refuses it: an encoder recipe does not read eval.noise, an SBT-Rec recipe says it evaluates only.
  r = test::run(test::bin("sbtrec-train") + " --config " + ml_config() + noisy + " --set output_dir=" + (dir / "t"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("eval.noise.kind is not read by the encoder recipe"), std::string::npos) << r.output;
  r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sbtrec_smollm.yaml") + noisy +
                " --set data.root=" + test::shared("data/ml-100k") + " --set encoder.checkpoint=" + (dir / "ckpt") +
                " --set output_dir=" + (dir / "t"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("noise is an evaluation setting"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "t"));
}

// The fault-injection hook of the dying-rank tests (SBTREC_FAULT_KILL_AT_STEP) lives only in the
// tests' sbtrec-train-faults: neither the shipped sbtrec-train nor the library carries it, so no user
// environment can make a run SIGKILL itself.
TEST(CLI, ShippedProgramsCarryNoFaultHook) {
  const std::string hook = "SBTREC_FAULT_KILL_AT_STEP";
  auto holds = [&](const std::string& path) {
    const std::string bytes = test::read_text(path);
    EXPECT_FALSE(bytes.empty()) << path;
    return bytes.find(hook) != std::string::npos;
  };
  EXPECT_FALSE(holds(test::bin("sbtrec-train")));
  EXPECT_FALSE(holds(std::string(SBTREC_BINARY_DIR) + "/libsbtrec.so"));
  EXPECT_TRUE(holds(test::bin("sbtrec-train-faults"))) << "the tests' build keeps the hook";
}

// Every program bounds libgomp's spin-waiting itself (common/openmp_defaults.h: set before the OpenMP
// runtime reads its environment, so the runtime shows it), and keeps a wait policy the user chose.
// A second program beside it takes the cores left (common/core_share.h) and says so.
TEST(CLI, ProgramsChooseTheirOpenMPWaitAndTheirShareOfTheCores) {
  const std::string unset = "env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY OMP_DISPLAY_ENV=verbose ";
  for (const char* p : {"sbtrec-data", "sbtrec-train", "sbtrec-eval", "sbtrec-quantize", "sbtrec-lm"}) {
    auto r = test::run(unset + test::bin(p) + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("GOMP_SPINCOUNT = '10000'"), std::string::npos) << p << ": " << r.output;
    r = test::run(unset + "GOMP_SPINCOUNT=77 " + test::bin(p) + " --help");
    EXPECT_NE(r.output.find("GOMP_SPINCOUNT = '77'"), std::string::npos) << p << ": " << r.output;
    r = test::run(unset + "OMP_WAIT_POLICY=active " + test::bin(p) + " --help");
    EXPECT_NE(r.output.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << p << ": " << r.output;
    EXPECT_EQ(r.output.find("GOMP_SPINCOUNT = '10000'"), std::string::npos) << p << ": " << r.output;
  }
  // Beside a process that holds every core (this test process, in a private ledger), a program without
  // OMP_NUM_THREADS takes one thread and names the holder.
  test::TempDir dir;
  ::setenv("SBTREC_CORE_LEDGER", (dir / "ledger").c_str(), 1);
  ::unsetenv("OMP_NUM_THREADS");
  const auto held = claim_cores();
  ::setenv("OMP_NUM_THREADS", "1", 1);
  ::unsetenv("SBTREC_CORE_LEDGER");
  const auto r = test::run("env -u OMP_NUM_THREADS SBTREC_CORE_LEDGER=" + (dir / "ledger") + " " +
                           test::bin("sbtrec-data") + " --help");
  EXPECT_NE(r.output.find("threads: 1 thread of " + std::to_string(held.cores) + " core"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sbtrec pid " + std::to_string(::getpid())), std::string::npos) << r.output;
}


// Runs set what they need per run (threads, seeds; train/run.h apply_run_settings) and recipes hold no
// process-wide state: one process running two recipes one after the other (SASRec, then GRU4Rec, each
// trained and then tested) gives what two separate sbtrec-train processes give, figure for figure.
TEST(CLI, TwoRunsInOneProcessEqualSeparateProcesses) {
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 120 --items 150");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> models = {"sasrec", "gru4rec"};
  std::map<std::string, nlohmann::json> separate, together;
  for (const auto& m : models) {
    r = test::run_stdout(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/" + m + ".yaml") +
                  " --set data.root=" + (dir / "syn") + " --set train.epochs=3 --set output_dir=" + (dir / ("cli_" + m)) +
                  " --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    separate[m] = nlohmann::json::parse(last_line(r.output));
  }
  for (const auto& m : models) {
    const Config cfg = load_config(test::source("configs/movielens/" + m + ".yaml"),
                                   {"data.root=" + (dir / "syn"), "train.epochs=3", "output_dir=" + (dir / ("lib_" + m))});
    train::check_keys_read(cfg);
    train::apply_run_settings(cfg);
    const auto ds = data::load_dataset(cfg.data);
    train::Run run(cfg, false);
    dist::ProcessGroup single;
    auto recipe = train::make_recipe({cfg, ds, run.config_yaml(), single, false});
    together[m] = train::run_training(*recipe, run, train::loop_options(cfg.train, cfg.seed, cfg.dist.bucket_mb));
  }
  for (const auto& m : models) {
    SCOPED_TRACE(m);
    for (const char* k : {"test", "val", "best_epoch", "first_loss", "last_loss", "steps", "model", "recipe"})
      EXPECT_EQ(together[m][k], separate[m][k]) << k;
  }
}
