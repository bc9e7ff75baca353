// sbtrec-eval: evaluates a checkpoint on the config's dataset. An encoder checkpoint: HR@1 over the
// seeded candidate sets, ValidRatio, and HR@10 / NDCG@10 by full ranking. An SBT-Rec checkpoint
// (llm.model set): generation (HR@1, ValidRatio, HR@1 of valid outputs) or eval.mode likelihood (HR@1,
// HR@5, NDCG@5), with the cases written to predictions_<split>_<mode>.jsonl in the checkpoint's run
// directory (or --predictions PATH): never over training's predictions.jsonl, never over a file another
// program wrote; an encoder's cases (its ranking of each candidate set) go to --predictions when given.
// eval.noise (data/noise.h) injects items into the evaluated histories after the candidates are drawn,
// so clean and noisy evaluations pair case by case. With --json the last stdout line is one object.
#include <filesystem>
#include <fstream>

#include "cli_common.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/noise.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/encoder/evaluate.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;

namespace {
// sbtrec-eval replaces only predictions it wrote itself (records with "source": "sbtrec-eval"): training's
// predictions.jsonl, a file of an older version or anything else at that path stays.
void check_own_predictions(const std::string& path) {
  if (!path_exists(path)) return;
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(first);
  } catch (const nlohmann::json::exception&) {
  }
  if (j.is_object() && j.value("source", "") == "sbtrec-eval") return;
  throw ConfigError("--predictions '" + path + "': the file exists and sbtrec-eval did not write it (" +
                    (j.is_object() && j.contains("source") ? "written by " + j["source"].get<std::string>()
                                                           : std::string("no \"source\": \"sbtrec-eval\" record")) +
                    "); choose another path with --predictions or move the file");
}
}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-eval: evaluate a checkpoint (HR@1, ValidRatio, HR@10, NDCG@10)"};
  cli::ConfigArgs cfg_args;
  cfg_args.add_to(app);
  std::string checkpoint, split = "test";
  bool json = false;
  app.add_option("--checkpoint", checkpoint, "Checkpoint directory (model.safetensors + config.yaml), or the run directory holding it in checkpoint/")->required();
  app.add_option("--split", split, "val or test")->check(CLI::IsMember({"val", "test"}));
  app.add_flag("--json", json, "End stdout with one JSON object of the metrics");
  bool other_inputs = false;
  app.add_flag("--allow-other-inputs", other_inputs,
               "SBT-Rec: evaluate although the config's encoder, templates, dataset or model differ from the checkpoint's "
               "(a deliberate cross-evaluation; a warning names each difference)");
  std::string predictions_path;
  app.add_option("--predictions", predictions_path,
                 "Write the cases here (SBT-Rec default: predictions_<split>_<mode>.jsonl in the checkpoint's run directory; an "
                 "encoder writes them only when asked)");
  std::string attention;
  int64_t attention_cases = 50;
  app.add_option("--attention", attention,
                 "SBT-Rec: instead of evaluating, write to this JSON file where the answer's first token attends, per "
                 "layer: the target's candidate slot, the other candidates' slots, the user and history slots");
  app.add_option("--attention-cases", attention_cases, "cases analysed with --attention")->check(CLI::PositiveNumber);
  std::string tokens;
  app.add_option("--tokens", tokens,
                 "SBT-Rec: instead of evaluating, write to this safetensors file every item's aligned behavioural token "
                 "and its title's mean input embedding (and the split's user tokens), for scripts/modality_gap.py");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    train::apply_run_settings(cfg);
    auto ds = data::load_dataset(cfg.data);
    const auto s = data::parse_split(split);
    // The candidates are drawn on the clean histories, then eval.noise goes into them (data/noise.h).
    const auto cands = data::make_candidates(ds, s, cfg.eval.num_negatives, cfg.eval.candidate_seed);
    if (cfg.eval.noise.enabled()) {
      data::inject_noise(ds, s, cands, cfg.eval.noise, cfg.data.max_history);
      spdlog::info("{} histories with noise: {}", split, cfg.eval.noise.describe());
    }
    if (cfg.recipe == "sft") {
      const std::string dir = resolve_checkpoint_dir(checkpoint, "sbtrec.safetensors");
      auto session = train::build_sbtrec(cfg, ds, /*fit_codebooks=*/false);
      train::load_sbtrec_checkpoint(dir, session, other_inputs);
      if (!tokens.empty()) {
        const auto t = eval::behaviour_tokens(session, s);
        safetensors::save(tokens, t, {{"format", "sbtrec-behaviour-tokens"}, {"checkpoint", dir}, {"split", split},
                                      {"aligner", config::choice_name(aligner::aligner_types(), cfg.aligner.type)}});
        std::cout << "wrote " << tokens << ": item_tokens, title_embeddings" << (t.count("user_tokens") ? ", user_tokens" : "")
                  << " (" << t.at("item_tokens").size(0) << " x " << t.at("item_tokens").size(1) << ")\n";
        return 0;
      }
      if (!attention.empty()) {
        const auto a = eval::attention_on_slots(session, s, cands, attention_cases);
        atomic_write_string(attention, a.dump(2) + "\n");
        std::cout << "layer  slot: target  other  head(share)  segment: target  other  head(share)  user   history\n";
        for (const auto& l : a["layers"])
          std::cout << fmt::format("{:5d}  {:12.4f}  {:.4f}  {:2d} ({:.3f})  {:15.4f}  {:.4f}  {:2d} ({:.3f})  {:.4f} {:.4f}\n",
                                   l["layer"].get<int64_t>(), l["target_slot"].get<double>(),
                                   l["other_candidate_slot"].get<double>(), l["best_head"].get<int64_t>(),
                                   l["best_head_target_share"].get<double>(), l["target_segment"].get<double>(),
                                   l["other_candidate_segment"].get<double>(), l["best_segment_head"].get<int64_t>(),
                                   l["best_segment_head_target_share"].get<double>(), l["user_slot"].get<double>(),
                                   l["history_slots"].get<double>());
        std::cout << fmt::format("chance share of the target among the candidate slots: {:.3f}; written to {}\n",
                                 a["chance_target_share"].get<double>(), attention);
        return 0;
      }
      const std::string mode = cfg.eval.mode;
      // The run directory: the parent of <run>/checkpoint, else the checkpoint directory itself.
      const auto p = std::filesystem::path(dir);
      const std::string run_dir = p.filename() == "checkpoint" ? p.parent_path().string() : dir;
      const std::string predictions =
          predictions_path.empty() ? run_dir + "/predictions_" + split + "_" + mode + ".jsonl" : predictions_path;
      check_own_predictions(predictions);  // before the evaluation's minutes
      const auto e = eval::evaluate_sbtrec(session, s, cands);
      eval::write_predictions(predictions, session, e, cands, "sbtrec-eval");
      std::cout << eval::format_table("sbtrec", split, e.metrics);
      auto j = e.to_json();
      std::cout << fmt::format("HR@1 of valid outputs (LLaRA's code's test_hr): {}; predictions: {}\n",
                               j.contains("hr@1_of_valid") ? fmt::format("{:.4f}", j["hr@1_of_valid"].get<double>())
                                                           : std::string("unmeasured (no valid output)"),
                               predictions);
      if (json) {
        j["model"] = "sbtrec";
        j["dataset"] = ds.name;
        j["checkpoint"] = dir;
        j["num_candidates"] = cfg.eval.num_negatives + 1;
        j["candidate_seed"] = cfg.eval.candidate_seed;
        j["predictions"] = predictions;
        if (cfg.eval.noise.enabled()) j["noise"] = cfg.eval.noise.describe();
        std::cout << j.dump() << std::endl;
      }
      return 0;
    }
    const std::string dir = resolve_checkpoint_dir(checkpoint, "model.safetensors");
    EncoderOptions mo;
    auto model = encoder::load_encoder(dir, ds.num_items, &mo);
    std::vector<encoder::EncoderCase> cases;
    const auto m = encoder::evaluate_encoder(*model, ds, s, cands, mo.max_len, cfg.eval.batch_size, &cases);
    std::cout << eval::format_table(encoder_name(mo.type), split, m);
    if (!predictions_path.empty()) {  // per case, as the LLM's records (a study's passes over an encoder run)
      check_own_predictions(predictions_path);
      atomic_write(predictions_path, [&](std::ostream& os) {
        for (size_t i = 0; i < cases.size(); ++i) {
          auto j = eval::case_record(ds, s, (int64_t)i, cands[i], "sbtrec-eval");
          const int32_t top = cands[i].items[(size_t)cases[i].top];
          j["output"] = ds.titles[(size_t)top];
          j["named"] = {ds.raw_item_ids[(size_t)top]};
          j["rank"] = cases[i].rank;
          j["hit"] = cases[i].rank == 0;
          j["valid"] = true;
          j["mode"] = "ranking";
          j["model"] = encoder_name(mo.type);
          os << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        }
      });
      std::cout << "predictions: " << predictions_path << "\n";
    }
    if (json) {
      auto j = m.to_json();
      j["model"] = encoder_name(mo.type);
      j["dataset"] = ds.name;
      j["split"] = split;
      j["checkpoint"] = dir;
      j["num_candidates"] = cfg.eval.num_negatives + 1;
      j["candidate_seed"] = cfg.eval.candidate_seed;
      if (cfg.eval.noise.enabled()) j["noise"] = cfg.eval.noise.describe();
      if (!predictions_path.empty()) j["predictions"] = predictions_path;
      std::cout << j.dump() << std::endl;
    }
    return 0;
  });
}
