// SBT-Rec end to end with the programs, on MovieLens-100K, LLaRA's pretrained SASRec and
// SmolLM2-135M-Instruct: sbtrec-quantize, then sbtrec-train for a few dozen SBS-AO steps (the loss
// falls, codebook rows and aligner weights move, the checkpoint has PEFT's adapter and
// sbtrec.safetensors), predictions.jsonl whose re-scored figures equal the JSON, sbtrec-eval giving the
// same figures from the checkpoint, the likelihood mode, exact resumption (10 + 10 steps == 20 steps,
// bit for bit) and refused bad input.
#include <filesystem>
#include <map>

#include "sbtrec_fixture.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/eval/matcher.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;
using test::last_json_line;
using test::read_jsonl;

namespace {
auto& fixture() { return test::sbtrec_fixture(); }
std::string common_sets(const test::SbtRecFixture& f) { return test::sbtrec_sets(f); }
}  // namespace

#define REQUIRE_INPUTS() SBTREC_REQUIRE_SBTREC_INPUTS()

TEST(SbtRecE2E, TrainEvaluateAndRescoreOnMovieLens) {
  REQUIRE_INPUTS();
  auto& f = fixture();
  test::TempDir dir;
  const std::string run = dir / "run";
  const std::string sets = common_sets(f) + " --set output_dir=" + run +
                           " --set train.max_steps=24 --set train.lr=1e-3 --set eval.max_cases=8"
                           " --set generation.max_new_tokens=20 --set train.log_every=4";
  auto r = test::run(test::bin("sbtrec-train") + sets + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto res = last_json_line(r.output);
  EXPECT_EQ(res["steps"], 24);
  EXPECT_LT(res["last_loss"].get<double>(), res["first_loss"].get<double>()) << res.dump();
  const auto& test_j = res["test"];
  EXPECT_EQ(test_j["n"], 8);
  for (const char* k : {"hr@1", "valid_ratio", "hr@1_of_valid", "hits", "valid"}) EXPECT_TRUE(test_j.contains(k)) << k;
  for (const char* p : {"checkpoint/adapter/adapter_config.json", "checkpoint/adapter/adapter_model.safetensors",
                        "checkpoint/sbtrec.safetensors", "checkpoint/config.yaml", "metrics.jsonl", "results.json",
                        "predictions.jsonl", "state/optimizer.pt", "state/state.json"})
    EXPECT_TRUE(std::filesystem::exists(run + "/" + p)) << p;

  // The item codebooks were moved by the LLM's loss (SBS-AO): some rows, not all (only chosen rows get
  // gradient). The user token is its nearest item's token (aligner.user_as_item), so the user codebooks
  // get none and stay as fitted.
  auto ckpt = safetensors::load(run + "/checkpoint/sbtrec.safetensors");
  auto init = safetensors::load(f.codebooks + "/codebooks.safetensors");
  for (const char* key : {"codebooks", "user_codebooks"}) {
    ASSERT_TRUE(ckpt.count(key)) << key;
    auto moved = (ckpt[key] - init[key]).abs().amax(-1).gt(0);  // [L, K]
    const int64_t rows = moved.sum().item<int64_t>();
    if (std::string(key) == "user_codebooks") {
      EXPECT_EQ(rows, 0) << key;
      continue;
    }
    EXPECT_GT(rows, 0) << key;
    EXPECT_LT(rows, moved.numel()) << key;
  }
  // The aligner moved away from its seeded initialisation (rebuilt here from the same config).
  const Config cfg = load_config(run + "/config.yaml");
  const auto ds = data::load_dataset(cfg.data);
  {
    auto s = train::build_sbtrec(cfg, ds, false);
    for (const auto& p : s.model->item_aligner->named_parameters()) {
      ASSERT_TRUE(ckpt.count("item_aligner." + p.key())) << p.key();
      EXPECT_FALSE(torch::equal(ckpt["item_aligner." + p.key()], p.value().detach())) << p.key();
    }
  }

  // predictions.jsonl re-scored with the matcher gives the JSON's figures.
  const auto preds = read_jsonl(run + "/predictions.jsonl");
  ASSERT_EQ((int64_t)preds.size(), 8);
  int64_t hits = 0, valid = 0;
  std::map<int64_t, size_t> internal;  // the dataset's own item id -> internal id
  for (size_t i = 0; i < ds.raw_item_ids.size(); ++i) internal[ds.raw_item_ids[i]] = i;
  for (const auto& p : preds) {
    for (const char* k : {"user", "candidates", "candidate_titles", "target", "target_title", "output", "named", "valid", "hit"})
      ASSERT_TRUE(p.contains(k)) << k;
    const auto titles = p["candidate_titles"].get<std::vector<std::string>>();
    const auto cands = p["candidates"].get<std::vector<int32_t>>();
    const int target = (int)(std::find(cands.begin(), cands.end(), p["target"].get<int32_t>()) - cands.begin());
    ASSERT_LT(target, (int)cands.size());
    for (size_t k = 0; k < cands.size(); ++k) {  // ids are the dataset's own: they name the titles shown
      ASSERT_TRUE(internal.count(cands[k])) << cands[k];
      EXPECT_EQ(ds.titles[internal.at(cands[k])], titles[k]);
    }
    EXPECT_EQ(titles[(size_t)target], p["target_title"]);
    const auto m = eval::match_generation(p["output"].get<std::string>(), titles, target);
    EXPECT_EQ(m.valid, p["valid"].get<bool>()) << p.dump();
    EXPECT_EQ(m.hit, p["hit"].get<bool>()) << p.dump();
    EXPECT_EQ((int64_t)m.named_indices.size(), (int64_t)p["named"].size());
    hits += m.hit;
    valid += m.valid;
  }
  EXPECT_EQ(hits, test_j["hits"].get<int64_t>());
  EXPECT_EQ(valid, test_j["valid"].get<int64_t>());
  EXPECT_DOUBLE_EQ(test_j["hr@1"].get<double>(), hits / 8.0);
  EXPECT_DOUBLE_EQ(test_j["valid_ratio"].get<double>(), valid / 8.0);
  const auto log = read_jsonl(run + "/metrics.jsonl");
  int train_records = 0;
  for (const auto& l : log) train_records += l["split"] == "train";
  EXPECT_EQ(train_records, 6);  // every 4 steps: the learning curve

  // sbtrec-eval from the checkpoint gives the same figures and the same cases, in its own file
  // (predictions_<split>_<mode>.jsonl): training's predictions.jsonl stays as training wrote it.
  const std::string before = test::read_text(run + "/predictions.jsonl");
  for (const auto& p : preds) {
    EXPECT_EQ(p["split"], "test");
    EXPECT_EQ(p["mode"], "generation");
    EXPECT_EQ(p["source"], "sbtrec-train");
  }
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ev = last_json_line(r.output);
  EXPECT_EQ(ev["hr@1"], test_j["hr@1"]);
  EXPECT_EQ(ev["valid_ratio"], test_j["valid_ratio"]);
  EXPECT_EQ(ev["n"], 8);
  EXPECT_EQ(ev["split"], "test");
  EXPECT_EQ(ev["mode"], "generation");
  EXPECT_EQ(ev["predictions"], run + "/predictions_test_generation.jsonl");
  EXPECT_EQ(test::read_text(run + "/predictions.jsonl"), before);
  auto evp = read_jsonl(run + "/predictions_test_generation.jsonl");
  ASSERT_EQ(evp.size(), preds.size());
  for (size_t i = 0; i < evp.size(); ++i) {
    EXPECT_EQ(evp[i]["source"], "sbtrec-eval");
    evp[i]["source"] = "sbtrec-train";
    EXPECT_EQ(evp[i], preds[i]) << i;
  }
  // Batches sorted by prompt length and the shared prompt prefix run once (the defaults) decode what
  // dataset-order batches of whole prompts decode, case by case.
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --set eval.sort_by_length=false --set eval.shared_prefix=false --predictions " + (dir / "plain.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plain = read_jsonl(dir / "plain.jsonl");
  ASSERT_EQ(plain.size(), evp.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i]["output"], evp[i]["output"]) << i;
  // It never replaces a file it did not write: training's predictions are refused as a target.
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --predictions " + run + "/predictions.jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("sbtrec-eval did not write it"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(run + "/predictions.jsonl"), before);

  // The checkpoint records its inputs; another template file (one word changed) is refused naming both
  // files, before any evaluation, unless the cross-evaluation is asked for.
  const auto inputs = nlohmann::json::parse(test::read_text(run + "/checkpoint/inputs.json"));
  for (const char* k : {"encoder", "dataset", "templates", "model"}) EXPECT_TRUE(inputs.contains(k)) << inputs.dump();
  std::string other = test::read_text(test::source("configs/prompts/movielens.txt"));
  other.replace(other.find(' '), 1, "  ");
  test::write_text(dir / "other.txt", other);
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --set prompt.templates=" + (dir / "other.txt") + " --set eval.max_cases=1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("templates"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("other.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("movielens.txt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-other-inputs"), std::string::npos) << r.output;
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --set prompt.templates=" + (dir / "other.txt") + " --set eval.max_cases=1 --allow-other-inputs" +
                " --predictions " + (dir / "cross.jsonl"));
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // Likelihood ranking: HR@1, HR@5, NDCG@5 over the candidates, every case valid, scores per candidate.
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                " --set eval.mode=likelihood --set eval.max_cases=4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto lj = last_json_line(r.output);
  EXPECT_EQ(lj["n"], 4);
  EXPECT_EQ(lj["valid_ratio"], 1.0);
  ASSERT_TRUE(lj.contains("hr@5") && lj.contains("ndcg@5")) << lj.dump();
  EXPECT_GE(lj["hr@5"].get<double>(), lj["hr@1"].get<double>());
  EXPECT_EQ(lj["predictions"], run + "/predictions_test_likelihood.jsonl");
  const auto lp = read_jsonl(run + "/predictions_test_likelihood.jsonl");
  ASSERT_EQ(lp.size(), 4u);
  for (const auto& p : lp) {
    ASSERT_EQ(p["scores"].size(), p["candidates"].size());
    const auto sc = p["scores"].get<std::vector<double>>();
    const size_t best = (size_t)(std::max_element(sc.begin(), sc.end()) - sc.begin());
    EXPECT_EQ(p["named"][0], p["candidates"][best]);
    for (double x : sc) EXPECT_LT(x, 0.0);  // log-likelihoods
  }

  // Constrained decoding: every output is one candidate's title, named in the record as such (mode
  // "constrained" in the result and in every prediction), greedy and with beams.
  for (const char* beams : {"1", "2"}) {
    r = test::run_stdout(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run +
                         " --set eval.mode=constrained --set eval.max_cases=4 --set generation.max_new_tokens=48" +
                         " --set generation.num_beams=" + beams + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto cj = last_json_line(r.output);
    EXPECT_EQ(cj["mode"], "constrained");
    EXPECT_EQ(cj["valid_ratio"], 1.0) << beams;
    const auto cp = read_jsonl(run + "/predictions_test_constrained.jsonl");
    ASSERT_EQ(cp.size(), 4u);
    for (const auto& p : cp) {
      EXPECT_EQ(p["mode"], "constrained");
      ASSERT_EQ(p["named"].size(), 1u);
      const auto cands = p["candidates"].get<std::vector<int64_t>>();
      const size_t k = (size_t)(std::find(cands.begin(), cands.end(), p["named"][0].get<int64_t>()) - cands.begin());
      ASSERT_LT(k, cands.size());
      EXPECT_EQ(p["output"], p["candidate_titles"][k]) << beams;
    }
  }

  // --tokens (scripts/modality_gap.py's input): every item's aligned token, each title's mean input
  // embedding and the split's user tokens, [N, E] / [S, E] float32, and no evaluation.
  r = test::run(test::bin("sbtrec-eval") + " --config " + run + "/config.yaml --checkpoint " + run + " --tokens " +
                (dir / "tokens.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto tok = safetensors::load(dir / "tokens.safetensors");
  ASSERT_TRUE(tok.count("item_tokens") && tok.count("title_embeddings") && tok.count("user_tokens"));
  EXPECT_EQ(tok["item_tokens"].size(0), 1682);
  EXPECT_EQ(tok["item_tokens"].sizes(), tok["title_embeddings"].sizes());
  EXPECT_EQ(tok["user_tokens"].size(0), 95);
  EXPECT_EQ(tok["item_tokens"].scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(tok["item_tokens"]).all().item<bool>());
  EXPECT_FALSE(std::filesystem::exists(run + "/predictions_test_generation.jsonl") &&
               r.output.find("HR@1") != std::string::npos);
}

TEST(SbtRecE2E, ResumeAfterStopEqualsUninterruptedRunBitForBit) {
  REQUIRE_INPUTS();
  auto& f = fixture();
  test::TempDir dir;
  // Short prompts (4 candidates) and 20 steps of 2; LoRA dropout stays on, so its masks must resume too,
  // and so must the dead-code counters (a window of 3 steps, so the stop at 10 falls inside one).
  const std::string sets = common_sets(f) +
                           " --set quantizer.dead_codes.enabled=true --set quantizer.dead_codes.window=3"
                           " --set train.max_steps=20 --set train.batch_size=2 --set eval.num_negatives=3"
                           " --set eval.max_cases=2 --set generation.max_new_tokens=4 --set train.log_every=5";
  auto r = test::run(test::bin("sbtrec-train") + sets + " --set output_dir=" + (dir / "full") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto full = last_json_line(r.output);
  r = test::run(test::bin("sbtrec-train") + sets + " --set output_dir=" + (dir / "split") + " --stop-after 10 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(last_json_line(r.output)["stopped"].get<bool>());
  EXPECT_FALSE(std::filesystem::exists(dir / "split/checkpoint")) << "no validation happened before the stop";
  auto st = nlohmann::json::parse(test::read_text(dir / "split/state/state.json"));
  EXPECT_EQ(st["step"], 10);
  // Another run's state/ is refused, naming both ids (here the full run's, copied in).
  std::filesystem::rename(dir / "split/state", dir / "split_state");
  std::filesystem::copy(dir / "full/state", dir / "split/state", std::filesystem::copy_options::recursive);
  r = test::run(test::bin("sbtrec-train") + " --config " + (dir / "split/config.yaml") + " --resume " + (dir / "split"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("belongs to another run"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir / "split/state");
  std::filesystem::rename(dir / "split_state", dir / "split/state");
  // A different config is refused; the run's own resumes.
  r = test::run(test::bin("sbtrec-train") + sets + " --set train.lr=1e-2 --resume " + (dir / "split"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("differs"), std::string::npos) << r.output;
  r = test::run(test::bin("sbtrec-train") + " --config " + (dir / "split/config.yaml") + " --resume " + (dir / "split") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto resumed = last_json_line(r.output);
  EXPECT_EQ(resumed["steps"], 20);
  EXPECT_EQ(resumed["first_loss"], full["first_loss"]);
  EXPECT_EQ(resumed["last_loss"], full["last_loss"]);
  EXPECT_EQ(resumed["test"], full["test"]);
  for (const char* file : {"state/checkpoint/sbtrec.safetensors", "state/checkpoint/adapter/adapter_model.safetensors",
                           "checkpoint/sbtrec.safetensors"}) {
    auto a = safetensors::load(dir / ("full/" + std::string(file)));
    auto b = safetensors::load(dir / ("split/" + std::string(file)));
    ASSERT_EQ(a.size(), b.size()) << file;
    for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << file << " " << k;
  }
  // The learning curve is the same record for record (timings aside).
  auto strip = [](std::vector<nlohmann::json> v) {
    for (auto& j : v) j.erase("tokens_per_s");
    return v;
  };
  EXPECT_EQ(strip(read_jsonl(dir / "full/metrics.jsonl")), strip(read_jsonl(dir / "split/metrics.jsonl")));
}

// quantizer.collisions: index through the programs: codebooks fitted at the start with the extra code,
// which SBS-AO trains, the checkpoint carries, and sbtrec-eval reads back (the same figures).
TEST(SbtRecE2E, CollisionsIndexTrainsCheckpointsAndEvaluates) {
  REQUIRE_INPUTS();
  auto& f = fixture();
  test::TempDir dir;
  const std::string run = dir / "run";
  const std::string sets = common_sets(f) + " --set quantizer.codebooks= --set quantizer.collisions=index" +
                           " --set quantizer.kmeans_iterations=5 --set output_dir=" + run +
                           " --set train.max_steps=6 --set train.lr=1e-2 --set eval.max_cases=4 --set eval.max_val_cases=4" +
                           " --set generation.max_new_tokens=12 --set train.curve_every=0";
  auto r = test::run(test::bin("sbtrec-train") + sets + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("collisions index: an extra code of"), std::string::npos) << r.output;
  const auto res = last_json_line(r.output);
  auto ckpt = safetensors::load(run + "/checkpoint/sbtrec.safetensors");
  ASSERT_TRUE(ckpt.count("index_codebook"));
  const auto& extra = ckpt["index_codebook"];  // [C, D]
  EXPECT_GT(extra.size(0), 1);                 // MovieLens: over a hundred items share one tuple
  EXPECT_GT(extra[0].abs().max().item<double>(), 0);  // row 0 started at zero and was trained
  auto e = test::run_stdout(test::bin("sbtrec-eval") + sets + " --checkpoint " + run + " --split test --json");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  const auto ev = last_json_line(e.output);
  EXPECT_EQ(ev["hr@1"], res["test"]["hr@1"]);
  EXPECT_EQ(ev["valid_ratio"], res["test"]["valid_ratio"]);
  // A config without the extra code is refused by name.
  auto keep = test::run(test::bin("sbtrec-eval") + common_sets(f) + " --set quantizer.codebooks= --checkpoint " + run +
                        " --split test --allow-other-inputs");
  EXPECT_NE(keep.exit_code, 0);
  EXPECT_NE(keep.output.find("index_codebook"), std::string::npos) << keep.output;
}

// dpo / sdpo after SFT: the policy starts at the SFT checkpoint and the reference is that checkpoint, so
// the first step's S-DPO loss is softplus(log k) = log(1 + k) exactly (no dropout); training moves the
// policy, whose checkpoint sbtrec-eval reads like any other. Without train.init_from it is refused.
TEST(SbtRecE2E, SdpoStartsFromTheSftCheckpointAtLogOnePlusK) {
  REQUIRE_INPUTS();
  auto& f = fixture();
  test::TempDir dir;
  const std::string sft = dir / "sft", pref = dir / "sdpo";
  const std::string small = " --set eval.max_cases=4 --set eval.max_val_cases=4 --set generation.max_new_tokens=12"
                            " --set lora.dropout=0 --set train.curve_every=0 --set train.log_every=1";
  auto r = test::run(test::bin("sbtrec-train") + common_sets(f) + small + " --set output_dir=" + sft +
                     " --set train.max_steps=2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run(test::bin("sbtrec-train") + common_sets(f) + small + " --set output_dir=" + (dir / "refused") +
                " --set train.objective=sdpo");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("train.init_from"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "refused"));
  r = test::run(test::bin("sbtrec-train") + common_sets(f) + small + " --set output_dir=" + pref +
                " --set train.objective=sdpo --set train.preference.negatives=3 --set train.init_from=" + sft +
                " --set train.max_steps=3 --set train.lr=1e-3 --set train.batch_size=2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("objective sdpo: the target's answer against 3 other candidates"), std::string::npos) << r.output;
  const auto res = last_json_line(r.output);
  EXPECT_EQ(res["objective"], "sdpo");
  EXPECT_NEAR(res["first_loss"].get<double>(), std::log(4.0), 1e-4) << res.dump();
  auto ckpt = safetensors::load(pref + "/checkpoint/sbtrec.safetensors");
  auto start = safetensors::load(sft + "/checkpoint/sbtrec.safetensors");
  EXPECT_FALSE(torch::equal(ckpt["item_aligner.mlp_proj.0.weight"], start["item_aligner.mlp_proj.0.weight"]));
  auto e = test::run_stdout(test::bin("sbtrec-eval") + " --config " + pref + "/config.yaml --checkpoint " + pref + " --json");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_EQ(last_json_line(e.output)["n"], 4);
}

TEST(SbtRecE2E, MissingEncoderIsRefusedBeforeAnythingIsWritten) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sbtrec_smollm.yaml") +
                     " --set data.root=" + test::shared("data/ml-100k") + " --set output_dir=" + (dir / "run") +
                     " --set encoder.checkpoint=");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("encoder.checkpoint"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
  r = test::run(test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sbtrec_smollm.yaml") +
                " --set data.root=" + test::shared("data/ml-100k") + " --set output_dir=" + (dir / "run2") +
                " --set encoder.checkpoint=" + (dir / "nowhere"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nowhere"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run2"));
}

// Unmeasured figures are absent, not 0: with no training step there is no first_loss / last_loss, and
// with no valid output (one generated token cannot name a title) no hr@1_of_valid.
TEST(SbtRecE2E, UnmeasuredFiguresAreAbsent) {
  REQUIRE_INPUTS();
  auto& f = fixture();
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-train") + common_sets(f) + " --set output_dir=" + (dir / "run") +
                     " --set train.epochs=0 --set train.max_steps=0 --set eval.num_negatives=3 --set eval.max_cases=2"
                     " --set eval.max_val_cases=2"
                     " --set generation.max_new_tokens=1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto res = last_json_line(r.output);
  EXPECT_EQ(res["steps"], 0);
  EXPECT_FALSE(res.contains("first_loss")) << res.dump();
  EXPECT_FALSE(res.contains("last_loss")) << res.dump();
  EXPECT_EQ(res["test"]["valid"], 0) << res.dump();
  EXPECT_FALSE(res["test"].contains("hr@1_of_valid")) << res.dump();
  EXPECT_EQ(nlohmann::json::parse(test::read_text(dir / "run/results.json")), res);
}
