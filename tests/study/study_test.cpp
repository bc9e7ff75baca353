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

TEST(Study, AVariantStartsFromAnEarlierVariantsRunOfTheSameSeed) {
  test::TempDir dir;
  const std::string body =
      "base: ../../base.yaml\n"
      "seeds: [1, 2]\n"
      "reference: sft\n"
      "variants:\n"
      "  - name: sft\n"
      "  - {name: sdpo, set: {train.objective: sdpo, train.init_from: \"@sft\"}}\n"
      "passes:\n"
      "  - {split: test, evaluator: generation}\n";
  const auto s = study::load_study(write_study(dir, body));
  const auto runs = study::plan_runs(s, dir / "out");
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_TRUE(runs[0].after.empty());
  const auto& r = runs[3];  // sdpo, seed 2
  EXPECT_EQ(r.variant, "sdpo");
  EXPECT_EQ(r.after, (std::vector<std::string>{dir / "out/sft/seed2"}));
  EXPECT_NE(std::find(r.sets.begin(), r.sets.end(), "train.init_from=" + (dir / "out/sft/seed2")), r.sets.end());
  // Only an earlier variant can be named.
  const std::string later =
      "base: ../../base.yaml\nseeds: [1]\nreference: a\nvariants:\n"
      "  - {name: a, set: {train.init_from: \"@b\"}}\n  - name: b\npasses:\n  - {split: test, evaluator: generation}\n";
  const auto bad = study::load_study(write_study(dir, later));
  try {
    study::plan_runs(bad, dir / "out");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("@b must name a variant listed before it"), std::string::npos) << e.what();
  }
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
  m = refusal(dir, with("evaluator: likelihood", "evaluator: sampling"));
  EXPECT_TRUE(has(m, "passes[].evaluator: 'sampling' is not an evaluator (")) << m;
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

// `prepare:`: the data and encoder every run gets (their keys first, so a variant's own keys win), and
// refusals naming the key.
TEST(Study, PrepareGivesEveryRunItsDataAndEncoder) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "data");
  test::write_text(dir / "llara.pt", "x");
  const auto s = study::load_study(write_study(dir, std::string(kStudy) +
                                                        "prepare:\n"
                                                        "  data: {root: ../../data}\n"
                                                        "  encoder: {import: ../../llara.pt}\n"));
  EXPECT_EQ(s.prepare.data_kind, "root");
  EXPECT_EQ(s.prepare.encoder_kind, "import");
  EXPECT_EQ(s.prepare.encoder_path, std::filesystem::path(dir / "llara.pt").lexically_normal().string());
  const auto out = std::filesystem::absolute(dir / "out").string();
  const auto runs = study::plan_runs(s, out);
  ASSERT_EQ(runs.size(), 4u);
  const auto data = std::filesystem::path(dir / "data").lexically_normal().string();
  EXPECT_EQ(runs[0].sets[0], "data.root=" + data);
  EXPECT_EQ(runs[0].sets[1], "encoder.checkpoint=" + out + "/prepared/encoder");
  EXPECT_EQ(runs[0].sets[2], "train.max_steps=5");
  // An encoder variant (a baseline row) gets the data but trains its own encoder.
  test::write_text(dir / "enc.yaml", "recipe: encoder\n");
  std::string with_encoder = std::string(kStudy) + "prepare:\n  data: {root: ../../data}\n  encoder: {import: ../../llara.pt}\n";
  with_encoder.replace(with_encoder.find("  - name: sbtrec\n"), 17, "  - name: sbtrec\n  - {name: sasrec, base: ../../enc.yaml}\n");
  const auto e = study::plan_runs(study::load_study(write_study(dir, with_encoder)), out);
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[2].variant, "sasrec");
  EXPECT_EQ(e[2].sets[0], "data.root=" + data);
  for (const auto& kv : e[2].sets) EXPECT_EQ(kv.rfind("encoder.checkpoint=", 0), std::string::npos) << kv;
  EXPECT_EQ(e[0].sets[1], "encoder.checkpoint=" + out + "/prepared/encoder");
  // A study key goes to the variants whose recipe reads it; one that none reads is refused.
  std::string mixed = with_encoder;
  mixed.replace(mixed.find("train.max_steps: 5"), 18, "train.max_steps: 5, train.loss: ce");
  const auto mr = study::plan_runs(study::load_study(write_study(dir, mixed)), out);
  EXPECT_NE(std::find(mr[2].sets.begin(), mr[2].sets.end(), "train.loss=ce"), mr[2].sets.end()) << "sasrec reads it";
  EXPECT_EQ(std::find(mr[2].sets.begin(), mr[2].sets.end(), "train.max_steps=5"), mr[2].sets.end()) << "not the LLM's";
  EXPECT_EQ(std::find(mr[0].sets.begin(), mr[0].sets.end(), "train.loss=ce"), mr[0].sets.end()) << "not sft's";
  std::string none = kStudy;
  none.replace(none.find("train.max_steps: 5"), 18, "train.loss: ce");
  try {
    study::plan_runs(study::load_study(write_study(dir, none)), out);
    ADD_FAILURE() << "accepted a key no variant reads";
  } catch (const ConfigError& x) {
    EXPECT_NE(std::string(x.what()).find("set: train.loss is read by none of the variants' recipes"), std::string::npos)
        << x.what();
  }

  const auto t = study::load_study(write_study(dir, std::string(kStudy) +
                                                        "prepare:\n"
                                                        "  data: {synth: {titles: random, users: 50}}\n"
                                                        "  encoder: {train: ../../base.yaml, set: {train.epochs: 2}}\n"));
  EXPECT_EQ(t.prepare.synth_args, (std::vector<std::string>{"--titles", "random", "--users", "50"}));
  EXPECT_EQ(t.prepare.encoder_sets, (std::vector<std::string>{"train.epochs=2"}));
  EXPECT_EQ(study::prepared_data_root(t, out), out + "/prepared/data");

  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  std::string m = refusal(dir, std::string(kStudy) + "prepare:\n  data: {root: ../../data, synth: {titles: random}}\n");
  EXPECT_TRUE(has(m, "prepare.data: must name one of root, synth, llara")) << m;
  m = refusal(dir, std::string(kStudy) + "prepare:\n  encoder: {checkpoint: ../../nowhere}\n");
  EXPECT_TRUE(has(m, "prepare.encoder.checkpoint: ")) << m;
  EXPECT_TRUE(has(m, "nowhere does not exist")) << m;
  m = refusal(dir, std::string(kStudy) + "prepare:\n  encoder: {import: ../../llara.pt, set: {a: 1}}\n");
  EXPECT_TRUE(has(m, "prepare.encoder.set: only with train:")) << m;
  m = refusal(dir, std::string(kStudy) + "prepare:\n  data: {synth: {out: x}}\n");
  EXPECT_TRUE(has(m, "prepare.data.synth.out: the study chooses the output")) << m;
  m = refusal(dir, std::string(kStudy) + "prepare:\n  data: {root: ../../data, tags: ../../data}\n");
  EXPECT_TRUE(has(m, "prepare.data.tags: only with llara:")) << m;
  m = refusal(dir, std::string(kStudy) + "prepare:\n  hdsd: {}\n");
  EXPECT_TRUE(has(m, "prepare.hdsd: unknown key")) << m;
}

// One HDSD fit per distinct (quantizer settings, data, encoder, k-means seed): variants that change
// something else share it, a variant with other levels or another seed gets its own, and runs that fit
// nothing get none.
TEST(Study, HdsdIsPreparedOncePerDistinctFit) {
  test::TempDir dir;
  const std::string base = test::source("configs/movielens/sbtrec_smollm.yaml");
  auto fit = [&](std::vector<std::string> sets, std::uint64_t seed = 1) {
    sets.push_back("seed=" + std::to_string(seed));
    return study::hdsd_prep_dir({"v", seed, dir / "out/v", base, sets}, dir / "out");
  };
  const auto a = fit({});
  EXPECT_NE(a.find("/prepared/hdsd-"), std::string::npos) << a;
  EXPECT_EQ(fit({"prompt.shuffle_items=true"}), a);
  EXPECT_EQ(fit({"prompt.hybrid=false", "train.max_steps=3", "aligner.type=linear"}), a);
  EXPECT_NE(fit({"quantizer.levels=1"}), a);
  EXPECT_NE(fit({"quantizer.item_rows=input"}), a);
  EXPECT_NE(fit({}, 2), a);                              // k-means seed = the run's seed
  EXPECT_EQ(fit({"quantizer.seed=7"}, 2), fit({"quantizer.seed=7"}, 3));  // unless quantizer.seed says
  EXPECT_NE(fit({"data.root=/elsewhere"}), a);
  EXPECT_EQ(fit({"quantizer.enabled=false"}), "");
  EXPECT_EQ(fit({"quantizer.codebooks=/given"}), "");
  EXPECT_EQ(study::hdsd_prep_dir({"s", 1, dir / "out/s", test::source("configs/movielens/sasrec.yaml"), {"seed=1"}},
                                 dir / "out"),
            "");
}

// A pass with eval.noise: named by its noise, its own predictions file, the noise in study.json; bad
// noise refused as eval.noise would refuse it.
TEST(Study, NoisyPassesAreNamedByTheirNoise) {
  test::TempDir dir;
  const std::string body = std::string(kStudy) +
                           "  - {split: test, evaluator: likelihood, noise: {kind: off_genre, count: 2, position: random}}\n"
                           "  - {split: test, evaluator: likelihood, noise: {kind: random}}\n";
  const auto s = study::load_study(write_study(dir, body));
  ASSERT_EQ(s.passes.size(), 4u);
  EXPECT_EQ(s.passes[2].name(), "test_likelihood_noise_off_genre_2_random");
  EXPECT_EQ(s.passes[2].predictions(), "predictions_test_likelihood_noise_off_genre_2_random.jsonl");
  EXPECT_EQ(s.passes[2].noise, (std::vector<std::string>{"kind=off_genre", "count=2", "position=random"}));
  EXPECT_EQ(s.passes[3].name(), "test_likelihood_noise_random_1_end");
  const auto j = study::study_json(s);
  EXPECT_EQ(j["passes"][2]["noise"], (nlohmann::json{{"kind", "off_genre"}, {"count", 2}, {"position", "random"}}));
  EXPECT_FALSE(j["passes"][0].contains("noise"));
  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  std::string m = refusal(dir, std::string(kStudy) + "  - {split: test, evaluator: likelihood, noise: {kind: loud}}\n");
  EXPECT_TRUE(has(m, "passes[].noise: ")) << m;
  EXPECT_TRUE(has(m, "loud")) << m;
  m = refusal(dir, std::string(kStudy) + "  - {split: test, evaluator: likelihood, noise: {kind: off}}\n");
  EXPECT_TRUE(has(m, "passes[].noise.kind: off: leave noise out")) << m;
  m = refusal(dir, std::string(kStudy) + "  - {split: test, evaluator: likelihood, noise: {count: 2}}\n");
  EXPECT_TRUE(has(m, "passes[].noise.kind: missing")) << m;
  m = refusal(dir, std::string(kStudy) + "  - {split: test, evaluator: likelihood, noise: {kind: random, level: 2}}\n");
  EXPECT_TRUE(has(m, "passes[].noise.level: unknown key")) << m;
  m = refusal(dir, std::string(kStudy) + "  - {split: test, evaluator: likelihood, noise: {kind: random, count: 0}}\n");
  EXPECT_TRUE(has(m, "count")) << m;
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
