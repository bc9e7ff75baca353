// sbtrec-train: trains what the config names into output_dir and prints the test metrics table: SBT-Rec
// (SBS-AO over codebooks, aligners and LoRA) when llm.model is set, else the sequential encoder. With
// --json the last stdout line is results.json as one object. --resume / --stop-after: SBT-Rec only.
#include "cli_common.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/train/encoder_trainer.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-train: train SBT-Rec (llm.model set) or a sequential encoder (SASRec, GRU4Rec, Caser)"};
  cli::ConfigArgs cfg_args;
  cfg_args.add_to(app, /*required=*/false);
  bool overwrite = false, json = false, reference = false;
  app.add_flag("--overwrite", overwrite, "Replace the run files of a previous run in output_dir");
  app.add_flag("--json", json, "End stdout with results.json as one JSON object");
  app.add_flag("--config-reference", reference, "Print the Markdown reference of every config key and exit");
  std::string resume;
  int64_t stop_after = 0;
  app.add_option("--resume", resume, "SBT-Rec: continue the run in this directory from its state/ (exactly)");
  app.add_option("--stop-after", stop_after, "SBT-Rec: stop after this many optimizer steps, saving state/ (as an interruption)")
      ->check(CLI::PositiveNumber);
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    if (reference) {
      std::cout << config_reference_markdown();
      return 0;
    }
    if (cfg_args.path.empty()) throw ConfigError("--config is required (a YAML file, see configs/)");
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    if (!resume.empty()) cfg.output_dir = resume;
    const bool sbtrec = !cfg.llm.model.empty();
    if (!sbtrec && (!resume.empty() || stop_after > 0))
      throw ConfigError("--resume and --stop-after apply to SBT-Rec runs (llm.model set); encoder runs are short");
    if (!resume.empty() && overwrite) throw ConfigError("--resume continues a run; --overwrite would discard it: pass one");
    train::Run run = resume.empty() ? train::Run(cfg, overwrite) : train::Run::resuming(cfg);  // refuses a used output_dir before any work
    const auto ds = data::load_dataset(cfg.data);
    spdlog::info("{}: {} items, samples train {} / val {} / test {}", ds.name, ds.num_items, ds.train.size(),
                 ds.val.size(), ds.test.size());
    const auto dups = data::duplicate_titles(ds);
    if (!dups.empty())
      spdlog::warn("{} titles are shared by several items (see `sbtrec-data stats`): generated titles naming them are ambiguous",
                   dups.size());
    if (sbtrec) {
      const auto results = train::train_sbtrec(cfg, ds, run, {!resume.empty(), stop_after});
      if (!results.value("stopped", false))
        std::cout << eval::format_table("sbtrec", "test", eval::Metrics::from_json(results["test"]));
      if (json) std::cout << results.dump() << std::endl;
      return 0;
    }
    const auto r = train::train_encoder(cfg, ds, run);
    spdlog::info("best epoch {} (val HR@1 {:.4f}); checkpoint {}; {:.1f}s", r.best_epoch, r.best_val.hr1.value_or(0),
                 r.checkpoint_dir, r.seconds);
    std::cout << eval::format_table(encoder_name(cfg.encoder.type), "test", r.test);
    if (json) std::cout << r.results.dump() << std::endl;
    return 0;
  });
}
