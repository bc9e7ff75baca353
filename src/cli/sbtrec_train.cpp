// sbtrec-train: trains what the config names into output_dir and prints the test metrics table: SBT-Rec
// (SBS-AO over codebooks, aligners and LoRA) when llm.model is set, else the sequential encoder. With
// --json the last stdout line is results.json as one object. --resume / --stop-after: SBT-Rec only.
// Data-parallel (SBT-Rec and the encoders): --nproc N starts N local ranks; under torchrun, srun (scripts/srun_sbtrec.sh)
// or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT the process joins that world.
// Rank 0 writes the run directory and stdout; the other ranks log warnings only.
#include "cli_common.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/launch.h"
#include "sbtrec/dist/process_group.h"
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
  int nproc = 0;
  app.add_option("--nproc", nproc, "Train data-parallel in this many local processes (c10d: gloo on CPU, nccl on CUDA)")
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
    const auto world = dist::world_from_env();
    if (nproc > 1 && world.distributed())
      throw ConfigError("--nproc starts its own processes, but this one already runs under a launcher (WORLD_SIZE=" +
                        std::to_string(world.world_size) + "): leave --nproc out");
    if (nproc > 1) {
      if (resume.empty()) train::Run check(cfg, overwrite);  // a used output_dir is refused once, here
      std::vector<std::string> args;
      for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--nproc") {
          ++i;
          continue;
        }
        if (a.rfind("--nproc=", 0) == 0) continue;
        args.push_back(a);
      }
      return dist::launch_local(nproc, args);
    }
    std::unique_ptr<dist::ProcessGroup> group;
    if (world.distributed()) {
      spdlog::set_pattern(fmt::format("[%H:%M:%S] rank {} %^%l%$ %v", world.rank));
      if (world.rank > 0) spdlog::set_level(spdlog::level::warn);
      // The encoders train on the CPU; SBT-Rec where the LLM runs.
      const torch::Device device = sbtrec ? dist::rank_device(cfg.llm.device, world) : torch::Device(torch::kCPU);
      group = std::make_unique<dist::ProcessGroup>(world, cfg.dist, device);
    }
    train::Run run = resume.empty() ? train::Run(cfg, overwrite) : train::Run::resuming(cfg);  // refuses a used output_dir before any work
    const auto ds = data::load_dataset(cfg.data);
    spdlog::info("{}: {} items, samples train {} / val {} / test {}", ds.name, ds.num_items, ds.train.size(),
                 ds.val.size(), ds.test.size());
    const auto dups = data::duplicate_titles(ds);
    if (!dups.empty())
      spdlog::warn("{} titles are shared by several items (see `sbtrec-data stats`): generated titles naming them are ambiguous",
                   dups.size());
    if (sbtrec) {
      const auto results = train::train_sbtrec(cfg, ds, run, {!resume.empty(), stop_after, group.get()});
      if (group && !group->main()) return 0;  // rank 0 reports
      if (!results.value("stopped", false))
        std::cout << eval::format_table("sbtrec", "test", eval::Metrics::from_json(results["test"]));
      if (json) std::cout << results.dump() << std::endl;
      return 0;
    }
    const auto r = train::train_encoder(cfg, ds, run, group.get());
    if (group && !group->main()) return 0;  // rank 0 reports
    spdlog::info("best epoch {} (val HR@1 {:.4f}); checkpoint {}; {:.1f}s", r.best_epoch, r.best_val.hr1.value_or(0),
                 r.checkpoint_dir, r.seconds);
    std::cout << eval::format_table(encoder_name(cfg.encoder.type), "test", r.test);
    if (json) std::cout << r.results.dump() << std::endl;
    return 0;
  });
}
