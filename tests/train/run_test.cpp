// The run lifecycle: refusing a used output_dir, nothing written before start(), a fresh
// metrics.jsonl per run, early stopping and best-checkpoint bookkeeping on named metrics, and
// checkpoint paths given as a run directory.
#include "sbtrec/train/run.h"

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

using namespace sbtrec;

namespace {
Config config_in(const std::string& dir, std::vector<std::string> sets = {}) {
  sets.push_back("output_dir=" + dir);
  return parse_config("", "x", sets);
}
eval::Metrics metrics(double hr1, std::optional<double> ndcg) {
  eval::Metrics m;
  m.n = 10;
  m.hr1 = hr1;
  m.ndcg10 = ndcg;
  return m;
}
int lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}
void write_marker(const std::string& dir) { test::write_text(dir + "/weights.txt", "w"); }
}  // namespace

TEST(Run, RefusesUsedDirectoryUnlessOverwriteAndWritesNothingBeforeStart) {
  test::TempDir tmp;
  const std::string out = tmp / "run";
  {
    train::Run run(config_in(out), false);
    EXPECT_FALSE(path_exists(out));  // construction only checks
    run.start();
    EXPECT_TRUE(path_exists(out + "/config.yaml"));
    run.log({{"split", "train"}});
  }
  EXPECT_EQ(lines(out + "/metrics.jsonl"), 1);
  try {
    train::Run again(config_in(out), false);
    FAIL() << "a non-empty output_dir must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos) << e.what();
  }
  test::write_text(out + "/notes.txt", "mine");
  // What the previous run and sbtrec-eval wrote besides: training state, predictions of both programs.
  make_dirs(out + "/state/checkpoint");
  test::write_text(out + "/state/state.json", "{}");
  test::write_text(out + "/predictions.jsonl", "{}\n");
  test::write_text(out + "/predictions_test_likelihood.jsonl", "{}\n");
  const std::string old_id = nlohmann::json::parse(read_file(out + "/run.json")).at("run_id");
  train::Run again(config_in(out), true);
  again.start();
  EXPECT_EQ(lines(out + "/metrics.jsonl"), 0);       // a fresh log, not appended to the old one
  EXPECT_TRUE(path_exists(out + "/notes.txt"));      // files that are not the run's stay
  for (const char* f : {"state", "predictions.jsonl", "predictions_test_likelihood.jsonl"})
    EXPECT_FALSE(path_exists(out + "/" + f)) << f << " survived --overwrite";
  EXPECT_NE(again.run_id(), old_id) << "a new run, a new id";
  EXPECT_EQ(nlohmann::json::parse(read_file(out + "/run.json")).at("run_id"), again.run_id());
  EXPECT_EQ(train::Run::resuming(config_in(out)).run_id(), again.run_id());
  test::write_text(tmp / "file", "x");
  EXPECT_THROW(train::Run(config_in(tmp / "file"), true), ConfigError);
}

TEST(Run, EarlyStoppingAndBestCheckpointFollowTheMonitoredMetrics) {
  test::TempDir tmp;
  train::Run run(config_in(tmp / "run", {"train.patience=2", "train.monitor=[hr@1, ndcg@10]"}), false);
  run.start();
  int saves = 0;
  auto save = [&](const std::string& dir) {
    ++saves;
    write_marker(dir);
  };
  EXPECT_TRUE(run.report_validation(1, 10, metrics(0.3, 0.2), save));
  EXPECT_FALSE(run.report_validation(2, 20, metrics(0.3, 0.1), save));  // hr@1 ties, ndcg@10 worse
  EXPECT_TRUE(run.report_validation(3, 30, metrics(0.3, 0.25), save));  // tie broken by ndcg@10
  EXPECT_FALSE(run.should_stop());
  EXPECT_FALSE(run.report_validation(4, 40, metrics(0.2, 0.9), save));
  EXPECT_FALSE(run.report_validation(5, 50, metrics(0.3, std::nullopt), save));  // absent metric is skipped
  EXPECT_TRUE(run.should_stop());
  EXPECT_EQ(run.best_epoch(), 3);
  EXPECT_EQ(saves, 2);
  EXPECT_TRUE(path_exists(run.checkpoint_dir() + "/weights.txt"));
  EXPECT_EQ(lines(run.dir() + "/metrics.jsonl"), 5);
  const auto results = run.finish({{"dataset", "toy"}});
  const auto j = nlohmann::json::parse(test::read_text(run.dir() + "/results.json"));
  EXPECT_EQ(j["output_dir"], run.dir());
  EXPECT_EQ(j["best_epoch"], 3);
  EXPECT_EQ(j["dataset"], "toy");
  EXPECT_FALSE(j["val"].contains("hr@10"));  // never measured: absent, not 0
}

TEST(Run, ValidationSchedule) {
  test::TempDir tmp;
  train::Run run(config_in(tmp / "run", {"train.eval_every=3", "train.epochs=7"}), false);
  std::vector<int> due;
  for (int e = 1; e <= 7; ++e)
    if (run.validation_due(e)) due.push_back(e);
  EXPECT_EQ(due, (std::vector<int>{3, 6, 7}));
}

TEST(Run, FailedCheckpointWriteKeepsThePreviousOne) {
  test::TempDir tmp;
  const std::string ckpt = tmp / "ckpt";
  atomic_write_dir(ckpt, [](const std::string& d) { write_marker(d); });
  EXPECT_THROW(atomic_write_dir(ckpt, [](const std::string& d) {
                 test::write_text(d + "/half.txt", "x");
                 throw IoError("disk full");
               }),
               IoError);
  EXPECT_TRUE(path_exists(ckpt + "/weights.txt"));
  EXPECT_FALSE(path_exists(ckpt + "/half.txt"));
}

TEST(Run, CheckpointMayBeGivenAsRunDirectory) {
  test::TempDir tmp;
  test::write_text(tmp / "run/checkpoint/model.safetensors", "x");
  EXPECT_EQ(resolve_checkpoint_dir(tmp / "run", "model.safetensors"), tmp / "run/checkpoint");
  EXPECT_EQ(resolve_checkpoint_dir(tmp / "run/checkpoint", "model.safetensors"), tmp / "run/checkpoint");
  try {
    resolve_checkpoint_dir(tmp / "nothing", "model.safetensors");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing/checkpoint/model.safetensors"), std::string::npos) << e.what();
  }
}
