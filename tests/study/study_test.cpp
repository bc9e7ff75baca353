// Study files (study/study.h): read with relative paths against the file, planned as variant x seed
// run directories with the study's keys then the variant's, and refused with the file, line and key
// when wrong; a run's state read from its directory.
#include "sbtrec/study/study.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "../test_util.h"
#include "sbtrec/common/error.h"

using namespace sbtrec;

namespace {
std::string write_study(const test::TempDir& dir, const std::string& body) {
  std::filesystem::create_directories(dir / "studies/x");
  test::write_text(dir / "base.yaml", "recipe: sft\n");
  test::write_text(dir / "other.yaml", "recipe: sft\n");
  test::write_text(dir / "studies/x/s.yaml", body);
  return dir / "studies/x/s.yaml";
}
std::string refusal(const test::TempDir& dir, const std::string& body) {
  try {
    study::load_study(write_study(dir, body));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}
const char* kStudy =
    "base: ../../base.yaml\n"
    "set: {train.max_steps: 5, eval.max_cases: 3}\n"
    "seeds: [1, 2]\n"
    "reference: sbtrec\n"
    "variants:\n"
    "  - name: sbtrec\n"
    "  - {name: text_only, base: ../../other.yaml, set: {train.max_steps: 7}}\n"
    "passes:\n"
    "  - {split: test, evaluator: likelihood}\n"
    "  - {split: val, evaluator: generation}\n";
}  // namespace

TEST(Study, ReadsAndPlansVariantsBySeeds) {
  test::TempDir dir;
  const auto s = study::load_study(write_study(dir, kStudy));
  EXPECT_EQ(s.name, "s");
  EXPECT_EQ(s.reference, "sbtrec");
  ASSERT_EQ(s.variants.size(), 2u);
  EXPECT_EQ(s.variants[0].base, std::filesystem::path(dir / "base.yaml").lexically_normal().string());
  EXPECT_EQ(s.variants[1].base, std::filesystem::path(dir / "other.yaml").lexically_normal().string());
  EXPECT_EQ(s.variants[1].sets, (std::vector<std::string>{"train.max_steps=5", "eval.max_cases=3", "train.max_steps=7"}));
  EXPECT_EQ(s.seeds, (std::vector<std::uint64_t>{1, 2}));
  ASSERT_EQ(s.passes.size(), 2u);
  EXPECT_EQ(s.passes[0].predictions(), "predictions_test_likelihood.jsonl");
  EXPECT_EQ(s.passes[1].name(), "val_generation");

  const auto runs = study::plan_runs(s, dir / "out");
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[1].variant, "sbtrec");
  EXPECT_EQ(runs[1].seed, 2u);
  EXPECT_EQ(runs[1].dir, dir / "out/sbtrec/seed2");
  EXPECT_EQ(runs[1].sets.back(), "output_dir=" + (dir / "out/sbtrec/seed2"));
  EXPECT_EQ(runs[1].sets[runs[1].sets.size() - 2], "seed=2");
  EXPECT_EQ(study::plan_runs(s, dir / "out", "text_only").size(), 2u);
  EXPECT_THROW(study::plan_runs(s, dir / "out", "nope"), ConfigError);

  // A run's state from its directory.
  const auto& r = runs[0];
  EXPECT_EQ(study::run_status(r, s), study::RunStatus::kNew);
  test::write_text(r.dir + "/state/state.json", "{}");
  EXPECT_EQ(study::run_status(r, s), study::RunStatus::kInterrupted);
  test::write_text(r.dir + "/results.json", "{}");
  test::write_text(r.dir + "/predictions_test_likelihood.jsonl", "");
  EXPECT_EQ(study::run_status(r, s), study::RunStatus::kTrained);
  test::write_text(r.dir + "/predictions_val_generation.jsonl", "");
  EXPECT_EQ(study::run_status(r, s), study::RunStatus::kDone);
  const auto j = study::study_json(s);
  EXPECT_EQ(j["variants"], (nlohmann::json{"sbtrec", "text_only"}));
  EXPECT_EQ(j["passes"][0]["predictions"], "predictions_test_likelihood.jsonl");
}

TEST(Study, BadFilesAreRefusedNamingTheKey) {
  test::TempDir dir;
  const std::string ok = kStudy;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = ok;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  std::string m = refusal(dir, ok + "epochs: 3\n");
  EXPECT_TRUE(has(m, "s.yaml:11: epochs: unknown key")) << m;
  m = refusal(dir, with("reference: sbtrec", "reference: sasrec"));
  EXPECT_TRUE(has(m, "reference: 'sasrec' is not one of the variants")) << m;
  m = refusal(dir, with("evaluator: likelihood", "evaluator: constrained"));
  EXPECT_TRUE(has(m, "passes[].evaluator: 'constrained' is not an evaluator (")) << m;
  m = refusal(dir, with("train.max_steps: 5", "seed: 5"));
  EXPECT_TRUE(has(m, "set: seed and output_dir are the study's")) << m;
  m = refusal(dir, with("name: text_only", "name: sbtrec"));
  EXPECT_TRUE(has(m, "'sbtrec' twice")) << m;
  m = refusal(dir, with("../../other.yaml", "../../missing.yaml"));
  EXPECT_TRUE(has(m, "variants[text_only].base: ")) << m;
  EXPECT_TRUE(has(m, "missing.yaml does not exist")) << m;
  m = refusal(dir, with("seeds: [1, 2]", "seeds: [1, one]"));
  EXPECT_TRUE(has(m, "seeds: 'one' is not a non-negative integer")) << m;
  m = refusal(dir, with("split: test", "split: train"));
  EXPECT_TRUE(has(m, "'train': val or test")) << m;
}

// The study's job lanes: never more than `parallel` jobs at once, never two in one slot, every job run
// once; after a failure nothing new starts, the running jobs finish.
TEST(Study, JobsRunInLanesAndAFailureStopsNewOnes) {
  std::mutex m;
  int running = 0, most = 0;
  std::vector<int> slot_busy(2, 0);
  std::vector<size_t> ran;
  auto job = [&](size_t i, int slot, bool fail) {
    {
      std::lock_guard<std::mutex> lock(m);
      EXPECT_TRUE(slot == 0 || slot == 1) << slot;
      EXPECT_EQ(slot_busy[(size_t)slot]++, 0) << "slot " << slot << " shared";
      most = std::max(most, ++running);
      ran.push_back(i);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(fail ? 1 : 30));
    std::lock_guard<std::mutex> lock(m);
    --slot_busy[(size_t)slot], --running;
    return fail ? 1 : 0;
  };
  auto failed = study::run_jobs(6, 2, [&](size_t i, int slot) { return job(i, slot, false); });
  EXPECT_TRUE(failed.empty());
  EXPECT_EQ(most, 2);
  std::sort(ran.begin(), ran.end());  // started in order; their first lines may interleave
  EXPECT_EQ(ran, (std::vector<size_t>{0, 1, 2, 3, 4, 5}));

  ran.clear();
  failed = study::run_jobs(6, 2, [&](size_t i, int slot) {
    if (i == 1) throw std::runtime_error("a job that throws fails");
    return job(i, slot, false);
  });
  EXPECT_EQ(failed, (std::vector<size_t>{1}));
  EXPECT_LE(ran.size(), 2u) << "after the failure of job 1 at most job 2 started (before it was seen)";
  EXPECT_NE(std::find(ran.begin(), ran.end(), 0u), ran.end());
}
