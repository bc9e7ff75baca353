// The behaviour-signal instruments end to end on `sbtrec-data synth --titles random` data (titles say
// nothing, rings of items carry the sequence): SASRec on it, HDSD on the scoring layer's rows
// (quantizer.item_rows output, refused with codebooks fitted on other rows), a few SBS-AO steps of
// SmolLM2 in the layout of the behaviour options (slots before titles, the user token before the
// answer, one shared aligner, unit inputs, tokens at the embedding rows' scale, palette tokens, the user
// token as its nearest item's) with learning-curve
// points and per-group gradient statistics in metrics.jsonl, token reliance in the likelihood
// evaluation (exactly no rank shift when every token is the same vector), and the attention analysis.
#include <filesystem>

#include "sbtrec_fixture.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;
using test::last_json_line;
using test::read_jsonl;

TEST(BehaviourE2E, InstrumentsOnRandomTitleData) {
  SBTREC_REQUIRE_MODEL();
  test::TempDir dir;
  const std::string data = dir / "data", enc = dir / "enc", q = dir / "q", run = dir / "run";
  auto r = test::run(test::bin("sbtrec-data") + " synth --titles random --users 300 --items 120 --out " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                " --set data.root=" + data + " --set output_dir=" + enc + " --set train.epochs=15 --set threads=2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string qsets = " --config " + test::source("configs/movielens/quantize.yaml") + " --set data.root=" + data +
                            " --encoder " + enc + " --set quantizer.codes=16 --set quantizer.kmeans_iterations=3";
  r = test::run(test::bin("sbtrec-quantize") + qsets + " --set quantizer.item_rows=output --out " + q);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(q + "/stats.json"))["item_rows"], "output");

  const std::string sets = " --config " + test::source("configs/movielens/sbtrec_smollm.yaml") + " --set data.root=" + data +
                           " --set encoder.checkpoint=" + enc + " --set quantizer.codebooks=" + q +
                           " --set quantizer.codes=16 --set prompt.templates=" + test::source("configs/prompts/movielens.txt");
  const std::string layout =
      " --set quantizer.item_rows=output --set prompt.slot_position=before_title --set prompt.user_token_position=answer"
      " --set aligner.shared=true --set aligner.input_norm=unit --set aligner.output_scale=embeddings"
      " --set aligner.palette_size=256 --set aligner.user_as_item=true";
  // Codebooks fitted on output rows are refused for input rows, naming the key.
  r = test::run(test::bin("sbtrec-train") + sets + " --set output_dir=" + (dir / "refused") + " --set train.max_steps=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("quantizer.item_rows"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "refused/config.yaml"));

  r = test::run(test::bin("sbtrec-train") + sets + layout + " --set output_dir=" + run +
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
  const auto e = train::evaluate_sbtrec(s, data::Split::kTest, cands);
  ASSERT_EQ(e.cases.size(), 2u);
  for (const auto& c : e.cases) {
    EXPECT_EQ(c.rank_permuted, c.rank);
    EXPECT_EQ(c.rank_mean, c.rank);
  }
}
