// sbtrec-train: trains the encoder named in the config and prints the test metrics table.
#include "cli_common.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/trainer.h"

using namespace sbtrec;

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-train: train a sequential encoder (SASRec, GRU4Rec, Caser)"};
  cli::ConfigArgs cfg_args;
  cfg_args.add_to(app);
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    const auto ds = data::load_dataset(cfg.data);
    spdlog::info("{}: {} items, samples train {} / val {} / test {}", ds.name, ds.num_items, ds.train.size(),
                 ds.val.size(), ds.test.size());
    const auto dups = data::duplicate_titles(ds);
    if (!dups.empty())
      spdlog::warn("{} titles are shared by several items (see `sbtrec-data stats`): generated titles naming them are ambiguous",
                   dups.size());
    const auto r = encoder::train_encoder(cfg, ds);
    spdlog::info("best epoch {} (val HR@1 {:.4f}); checkpoint {}; {:.1f}s", r.best_epoch, r.best_val.hr1,
                 r.checkpoint_dir, r.seconds);
    std::cout << eval::format_table(cfg.model.type, "test", r.test);
    return 0;
  });
}
