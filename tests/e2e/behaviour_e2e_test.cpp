// The behaviour-signal benchmark's data end to end (`sbtrec-data synth --titles random`: titles say
// nothing, rings of items carry the sequence): SASRec on it and HDSD on its scoring rows
// (configs/movielens/quantize_smollm.yaml; refused by the paper's config, which wants the item-embedding
// rows), then SmolLM2 with the shipped configs/movielens/sbtrec_smollm.yaml:
//   - the instruments: learning-curve points and per-group gradient statistics in metrics.jsonl, token
//     reliance in the likelihood evaluation (exactly no rank shift when every token is the same vector),
//     the attention analysis;
//   - the method learns from behaviour: behaviour_proof_test.cpp (label `slow`).
#include <filesystem>
#include <iostream>

#include "behaviour_fixture.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;
using test::last_json_line;
using test::read_jsonl;

using test::bsig;
using test::bsig_sets;

TEST(BehaviourE2E, InstrumentsOnRandomTitleData) {
  SBTREC_REQUIRE_MODEL();
  auto& b = bsig();
  ASSERT_FALSE(b.data.empty());
  EXPECT_EQ(nlohmann::json::parse(read_file(b.q + "/stats.json"))["item_rows"], "output");
  test::TempDir dir;
  const std::string run = dir / "run";
  // Codebooks fitted on the scoring rows are refused by the paper's config (item-embedding rows), naming the key.
  auto r = test::run(test::bin("sbtrec-train") + bsig_sets(b, "configs/movielens/ablations/sbtrec_smollm_paper.yaml") +
                     " --set output_dir=" + (dir / "refused") + " --set train.max_steps=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("quantizer.item_rows"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "refused/config.yaml"));

  r = test::run(test::bin("sbtrec-train") + bsig_sets(b) + " --set aligner.palette_size=256 --set output_dir=" + run +
                " --set train.max_steps=4 --set train.log_every=2 --set train.curve_every=2 --set train.curve_cases=3"
                " --set eval.token_reliance=true --set eval.mode=likelihood --set eval.max_cases=3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto res = last_json_line(r.output);
  const auto& t = res["test"];
  EXPECT_EQ(t["mode"], "likelihood");
  EXPECT_EQ(t["split"], "test");
  for (const char* k : {"hr@1_tokens_permuted", "hr@1_tokens_mean", "rank_shift_permuted", "rank_shift_mean"})
    EXPECT_TRUE(t.contains(k)) << k << " in " << t.dump();
  std::vector<int64_t> curve_steps;
  int stats = 0;
  for (const auto& l : read_jsonl(run + "/metrics.jsonl")) {
    if (l["split"] == "val_curve") {
      curve_steps.push_back(l["step"].get<int64_t>());
      EXPECT_EQ(l["n"], 3);
      EXPECT_EQ(l["mode"], "likelihood");
      EXPECT_TRUE(l.contains("rank_shift_permuted")) << l.dump();
    }
    if (l["split"] == "train") {
      ++stats;
      for (const char* g : {"codebooks", "aligner", "lora"}) {
        ASSERT_TRUE(l["grad_norm"].contains(g)) << l.dump();
        EXPECT_GT(l["grad_norm"][g].get<double>(), 0) << g;
        EXPECT_GT(l["update_ratio"][g].get<double>(), 0) << g;
      }
    }
  }
  EXPECT_EQ(curve_steps, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(stats, 2);
  for (const auto& p : read_jsonl(run + "/predictions.jsonl")) {
    ASSERT_TRUE(p.contains("rank_tokens_permuted") && p.contains("rank_tokens_mean")) << p.dump();
    EXPECT_GE(p["rank"].get<int64_t>(), 0);
  }

  // The attention of the answer's first token over the slots, per layer.
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --split val --attention " + (dir / "attention.json") + " --attention-cases 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = nlohmann::json::parse(read_file(dir / "attention.json"));
  EXPECT_EQ(a["cases"], 2);
  ASSERT_EQ(a["layers"].size(), 30u);  // SmolLM2-135M
  for (const auto& l : a["layers"]) {
    const double total = l["target_slot"].get<double>() + 19 * l["other_candidate_slot"].get<double>() +
                         l["user_slot"].get<double>() + l["history_slots"].get<double>();
    EXPECT_GE(l["user_slot"].get<double>(), 0);
    EXPECT_LE(total, 1.0 + 1e-6) << l.dump();
  }

  // Reliance measures only the tokens: when every behavioural token is the same vector, moving them
  // changes nothing, so every rank stays where it was.
  Config cfg = load_config(run + "/config.yaml", {"eval.max_cases=2"});
  const auto ds = data::load_dataset(cfg.data);
  auto s = train::build_sbtrec(cfg, ds, false);
  train::load_sbtrec_checkpoint(run + "/checkpoint", s);
  {
    torch::NoGradGuard ng;
    s.model->item_aligner->mlp_proj[2]->as<torch::nn::Linear>()->weight.zero_();  // shared: users too
  }
  const auto cands = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const auto e = eval::evaluate_sbtrec(s, data::Split::kTest, cands);
  ASSERT_EQ(e.cases.size(), 2u);
  for (const auto& c : e.cases) {
    EXPECT_EQ(c.rank_permuted, c.rank);
    EXPECT_EQ(c.rank_mean, c.rank);
  }
}

