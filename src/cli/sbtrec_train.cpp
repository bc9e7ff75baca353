// sbtrec-train: runs the recipe the config names (`recipe`: encoder | sft, train/recipes.h) into
// output_dir and prints the test metrics table. With --json the last stdout line is results.json as one
// object. --resume / --stop-after: recipes that save training state (sft).
// Data-parallel (SBT-Rec and the encoders): --nproc N starts N local ranks; under torchrun, srun (scripts/srun_sbtrec.sh)
// or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT the process joins that world.
// Rank 0 writes the run directory and stdout; the other ranks log warnings only.
#include "cli_common.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/launch.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/train/recipes.h"

using namespace sbtrec;

#ifdef SBTREC_FAULT_INJECTION
#include <signal.h>
namespace {
// Only in sbtrec-train-faults, the tests' build of this program (tests/CMakeLists.txt; never
// installed): SBTREC_FAULT_KILL_AT_STEP=k (and SBTREC_FAULT_RANK=r to pick one rank under --nproc)
// makes the process SIGKILL itself as step k starts, for the tests of a dying rank.
std::function<void(int64_t, int)> fault_hook() {
  const char* kill_at = std::getenv("SBTREC_FAULT_KILL_AT_STEP");
  const char* kill_rank = std::getenv("SBTREC_FAULT_RANK");
  const int64_t at = kill_at ? std::atoll(kill_at) : 0;
  if (at <= 0) return {};
  return [at, kill_rank](int64_t step, int rank) {
    if (step != at || (kill_rank && std::atoi(kill_rank) != rank)) return;
    spdlog::warn("SBTREC_FAULT_KILL_AT_STEP={}: rank {} kills itself (SIGKILL)", at, rank);
    ::raise(SIGKILL);
  };
}
}  // namespace
#else
namespace {
std::function<void(int64_t, int)> fault_hook() { return {}; }
}  // namespace
#endif

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-train: run a training recipe (recipe: sft = SBT-Rec, encoder = SASRec, GRU4Rec, Caser)"};
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
    // The recipe the config names; a key it does not read is refused before anything runs.
    const auto& spec = train::recipe_spec(cfg.recipe);
    train::check_keys_read(cfg);
    if (cfg.eval.noise.enabled())
      throw ConfigError("eval.noise.kind is " + cfg.eval.noise.describe() + ": noise is an evaluation setting; train on "
                        "clean histories and evaluate with sbtrec-eval --set eval.noise.kind=...");
    if (cfg.recipe == "encoder" && (!resume.empty() || stop_after > 0))
      throw ConfigError("--resume and --stop-after apply to recipes that save training state (sft); encoder runs are short");
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
      group = std::make_unique<dist::ProcessGroup>(world, cfg.dist, spec.device(cfg, world));
    }
    dist::ProcessGroup single;
    dist::ProcessGroup& g = group ? *group : single;
    spdlog::info("recipe {}: {}", cfg.recipe, spec.what);
    train::apply_run_settings(cfg);
    train::Run run = resume.empty() ? train::Run(cfg, overwrite) : train::Run::resuming(cfg);  // refuses a used output_dir before any work
    const auto ds = data::load_dataset(cfg.data);
    spdlog::info("{}: {} items, samples train {} / val {} / test {}", ds.name, ds.num_items, ds.train.size(),
                 ds.val.size(), ds.test.size());
    const auto dups = data::duplicate_titles(ds);
    if (!dups.empty())
      spdlog::warn("{} titles are shared by several items (see `sbtrec-data stats`): generated titles naming them are ambiguous",
                   dups.size());
    // Everything that can fail on the inputs happens before the run directory is written.
    const auto resumed = resume.empty() ? nlohmann::json() : train::read_resume_state(run, g.size());
    auto recipe = spec.make({cfg, ds, run.config_yaml(), g, !resume.empty()});
    auto options = train::loop_options(cfg.train, cfg.seed, cfg.dist.bucket_mb);
    options.resume = !resume.empty();
    options.stop_after = stop_after;
    options.group = &g;
    options.before_step = fault_hook();
    const auto results = train::run_training(*recipe, run, options, resumed);
    if (!g.main()) return 0;  // rank 0 reports
    if (!results.value("stopped", false)) {
      spdlog::info("best epoch {}; checkpoint {}; {:.1f}s", results["best_epoch"].get<int>(),
                   results["checkpoint"].get<std::string>(), results["seconds"].get<double>());
      std::cout << eval::format_table(results["model"].get<std::string>(), "test", eval::Metrics::from_json(results["test"]));
    }
    if (json) std::cout << results.dump() << std::endl;
    return 0;
  });
}
