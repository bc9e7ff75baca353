// sbtrec-study end to end on the behaviour-signal data (behaviour_fixture.h) at a tiny budget: two
// variants (the shipped SmolLM2 config and text-only) x two seeds, one likelihood pass. --dry-run lists
// the runs and their state; a run interrupted beforehand (--stop-after) is continued with --resume, the
// others trained, two at once (--jobs 2); each pass written by sbtrec-eval; a second `run` does
// nothing; `report` writes the statistics over the runs' own predictions.
#include <filesystem>
#include <regex>

#include "behaviour_fixture.h"

using namespace sbtrec;

TEST(StudyE2E, RunsVariantsBySeedsResumesSkipsAndReports) {
  SBTREC_REQUIRE_MODEL();
  SBTREC_REQUIRE_PYTHON();
  auto& b = test::bsig();
  ASSERT_FALSE(b.data.empty());
  test::TempDir dir;
  const std::string study = dir / "study.yaml", out = dir / "out";
  test::write_text(study, "name: tiny\n"
                          "base: " + test::source("configs/movielens/sbtrec_smollm.yaml") + "\n"
                          "prepare:\n"
                          "  data: {root: " + b.data + "}\n"
                          "  encoder: {checkpoint: " + b.enc + "}\n"
                          "set:\n"
                          "  quantizer.codes: 16\n"
                          "  prompt.templates: " + test::source("configs/prompts/movielens.txt") + "\n"
                          "  train.max_steps: 2\n"
                          "  eval.mode: likelihood\n"
                          "  eval.max_cases: 3\n"
                          "  eval.max_val_cases: 1\n"
                          "seeds: [1, 2]\n"
                          "reference: sbtrec\n"
                          "variants:\n"
                          "  - name: sbtrec\n"
                          "  - {name: text_only, base: " + test::source("configs/movielens/ablations/sbtrec_smollm_text_only.yaml") + "}\n"
                          // A baseline row: SASRec trained per seed; the study's LLM keys are not its.
                          "  - {name: sasrec, base: " + test::source("configs/movielens/sasrec.yaml") + ", set: {train.epochs: 2}}\n"
                          "passes:\n"
                          "  - {split: test, evaluator: likelihood}\n"
                          "  - {split: test, evaluator: likelihood, noise: {kind: random, count: 2}}\n");
  const std::string run_dir = out + "/text_only/seed2";
  // One run interrupted before the study starts: trained 1 of its 2 steps, state saved.
  auto r = test::run(test::bin("sbtrec-train") +
                     test::bsig_sets(b, "configs/movielens/ablations/sbtrec_smollm_text_only.yaml") +
                     " --set train.max_steps=2 --set eval.mode=likelihood --set eval.max_cases=3 --set eval.max_val_cases=1"
                     " --set seed=2 --set output_dir=" + run_dir + " --stop-after 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  r = test::run(test::bin("sbtrec-study") + " run " + study + " --out " + out + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 variants x 2 seeds = 6 runs (6 to do), 2 passes each; reference sbtrec"), std::string::npos)
      << r.output;
  // HDSD fitted once per seed for the runs still to start (text_only/seed2 has its codebooks already).
  EXPECT_TRUE(std::regex_search(r.output, std::regex("prepare HDSD fit: sbtrec/seed1 and 1 more +to do"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("prepare HDSD fit: sbtrec/seed2 +to do"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("interrupted +text_only/seed2"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("new +sbtrec/seed1"))) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out + "/sbtrec")) << "a dry run writes nothing";
  r = test::run(test::bin("sbtrec-study") + " run " + study + " --out " + out + " --dry-run --seed 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("3 variants x 1 seeds = 3 runs (3 to do)"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("/seed1"), std::string::npos) << r.output;
  r = test::run(test::bin("sbtrec-study") + " run " + study + " --out " + out + " --dry-run --seed 5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--seed 5: "), std::string::npos) << r.output;

  r = test::run(test::bin("sbtrec-study") + " run " + study + " --out " + out + " --jobs 2");  // two at once
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("run 5 of 6: text_only/seed2 (interrupted)"), std::string::npos) << r.output;
  for (const char* v : {"sbtrec", "text_only"})
    for (const char* k : {"seed1", "seed2"}) {
      const std::string d = out + "/" + v + "/" + k;
      EXPECT_TRUE(std::filesystem::exists(d + "/results.json")) << d;
      EXPECT_EQ(test::read_jsonl(d + "/predictions_test_likelihood.jsonl").size(), 3u) << d;
      const auto noisy = test::read_jsonl(d + "/predictions_test_likelihood_noise_random_2_end.jsonl");
      ASSERT_EQ(noisy.size(), 3u) << d;
      EXPECT_EQ(noisy[0]["noise"], "test: random x 2 at end, seed 2024") << d;
      // The test pass is training's own test evaluation (same checkpoint, cases, evaluator), not recomputed.
      EXPECT_EQ(test::read_text(d + "/predictions_test_likelihood.jsonl"), test::read_text(d + "/predictions.jsonl")) << d;
      EXPECT_EQ(nlohmann::json::parse(test::read_text(d + "/results.json"))["steps"], 2) << d;
    }
  // The baseline row: its own SASRec per seed, its passes its ranking of every test case (the report
  // pairs the cases all runs hold).
  for (const char* k : {"seed1", "seed2"}) {
    const std::string d = out + "/sasrec/" + k;
    EXPECT_TRUE(std::filesystem::exists(d + "/checkpoint/model.safetensors")) << d;
    const auto ranks = test::read_jsonl(d + "/predictions_test_likelihood.jsonl");
    ASSERT_GE(ranks.size(), 3u) << d;
    EXPECT_EQ(ranks[0]["mode"], "ranking");
    EXPECT_EQ(ranks[0]["hit"], ranks[0]["rank"] == 0);
    EXPECT_EQ(test::read_text(d + "/config.yaml").find("max_steps: 2\n"), std::string::npos) << "the LLM's keys are not its";
  }
  // The prepared fits: one per seed, named in the runs' configs.
  size_t fits = 0;
  for (const auto& e : std::filesystem::directory_iterator(out + "/prepared"))
    fits += e.path().filename().string().rfind("hdsd-", 0) == 0 && std::filesystem::exists(e.path() / "codebooks.safetensors");
  EXPECT_EQ(fits, 2u);
  EXPECT_NE(test::read_text(out + "/sbtrec/seed1/config.yaml").find(out + "/prepared/hdsd-"), std::string::npos);
  // Seeds differ, so the runs do.
  EXPECT_NE(test::read_text(out + "/sbtrec/seed1/checkpoint/sbtrec.safetensors"),
            test::read_text(out + "/sbtrec/seed2/checkpoint/sbtrec.safetensors"));

  const auto before = std::filesystem::last_write_time(out + "/sbtrec/seed1/results.json");
  r = test::run(test::bin("sbtrec-study") + " run " + study + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(0 to do)"), std::string::npos) << r.output;
  EXPECT_EQ(std::filesystem::last_write_time(out + "/sbtrec/seed1/results.json"), before);

  r = test::run(test::bin("sbtrec-study") + " report " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"results.md", "results.csv", "results.json"})
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  const auto res = nlohmann::json::parse(test::read_text(out + "/results.json"));
  const auto& t = res["passes"]["test_likelihood"]["variants"]["text_only"];
  EXPECT_EQ(t["seeds"], (nlohmann::json{1, 2}));
  EXPECT_EQ(t["vs_reference"]["mcnemar_hr@1"]["cases"], 6);
  EXPECT_EQ(res["passes"]["test_likelihood"]["variants"]["sasrec"]["vs_reference"]["mcnemar_hr@1"]["cases"], 6)
      << "the encoder's extra cases are left out";
  r = test::run(test::bin("sbtrec-study") + " cases " + out + " --max 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(out + "/cases.md") && std::filesystem::exists(out + "/cases.json"));
  const auto& noisy = res["passes"]["test_likelihood_noise_random_2_end"];
  EXPECT_EQ(noisy["clean_pass"], "test_likelihood");
  EXPECT_EQ(noisy["variants"]["sbtrec"]["vs_clean"]["mcnemar"]["cases"], 6);
}

// Every shipped study file (studies/**/*.yaml) resolves: its base configs, variants' overrides, passes and
// prepared inputs are accepted by `sbtrec-study run --dry-run` (which writes nothing), so a study file
// cannot rot when a config key changes.
TEST(StudyFiles, EveryShippedStudyPassesDryRun) {
  SBTREC_REQUIRE_MODEL();
  SBTREC_REQUIRE_SHARED("data/ml-100k");
  SBTREC_REQUIRE_SHARED("data/llara/lastfm");
  SBTREC_REQUIRE_SHARED("data/hetrec2011-lastfm-2k");
  SBTREC_REQUIRE_SHARED("models/llara-rec-models");
  test::TempDir dir;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(test::source("studies")))
    if (e.is_regular_file() && e.path().extension() == ".yaml") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 30u) << "the ready studies (rq1-rq5 x 2 datasets x 2 flavours, sdpo, ...)";
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string out = dir / ("s" + std::to_string(i));
    const auto r = test::run(test::bin("sbtrec-study") + " run " + files[i] + " --out " + out + " --dry-run");
    EXPECT_EQ(r.exit_code, 0) << files[i] << "\n" << r.output;
    EXPECT_NE(r.output.find(" runs ("), std::string::npos) << files[i] << "\n" << r.output;
    EXPECT_FALSE(std::filesystem::exists(out + "/study.json")) << files[i] << ": --dry-run wrote the study";
  }
}
