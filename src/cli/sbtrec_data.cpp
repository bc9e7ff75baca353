// sbtrec-data: dataset statistics, sample export (raw ids, LLaRA protocol), synthetic data.
#include "cli_common.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/data/movielens.h"
#include "sbtrec/data/noise.h"

using namespace sbtrec;

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-data: inspect and export datasets under the LLaRA protocol"};
  app.require_subcommand(1);
  cli::ConfigArgs cfg_args;
  auto* stats = app.add_subcommand("stats", "Print users / items / interactions / samples per split");
  cfg_args.add_to(*stats);
  auto* exp = app.add_subcommand("export", "Write one line per sample: user<TAB>h1 ... hk<TAB>target[<TAB>c1 ... cn] (raw "
                                  "ids); with --set eval.noise.kind=... the noisy histories sbtrec-eval evaluates");
  cli::ConfigArgs exp_args;
  exp_args.add_to(*exp);
  std::string split = "train", out;
  bool with_candidates = false;
  exp->add_option("--split", split, "train, val or test")->check(CLI::IsMember({"train", "val", "test"}));
  exp->add_option("--out", out, "Output file (written atomically)")->required();
  exp->add_flag("--candidates", with_candidates,
                "Add a fourth column: the sample's candidates (raw ids, in order), drawn with eval.num_negatives "
                "and eval.candidate_seed as sbtrec-eval draws them");
  auto* synth = app.add_subcommand("synth", "Write a synthetic dataset in GroupLens format (u.data, u.item)");
  data::SyntheticOptions so;
  std::string synth_out;
  synth->add_option("--out", synth_out, "Output directory")->required();
  std::string titles = "numbered";
  int users = 0, items = 0, ring_size = 0;
  synth->add_option("--titles", titles,
                    "numbered: titles number one ring of items (the text reveals the sequence; default); random: two "
                    "random words per title, items on rings of --ring-size, behaviour alone predicts the next item "
                    "(defaults 2000 users, 600 items)")
      ->check(CLI::IsMember({"numbered", "random"}));
  synth->add_option("--users", users, "Number of users (numbered: 943, random: 2000)");
  synth->add_option("--items", items, "Number of items (numbered: 1682, random: 600)");
  synth->add_option("--ring-size", ring_size, "random titles: items per ring (20)");
  synth->add_option("--seed", so.seed, "Generator seed");
  SBTREC_PARSE(app, argc, argv);

  return cli::guarded_main([&]() {
    Config cfg;
    if (*stats) {
      if (!cfg_args.load(cfg)) return 0;
      std::cout << data::describe(data::load_dataset(cfg.data));
    } else if (*exp) {
      if (!exp_args.load(cfg)) return 0;
      auto ds = data::load_dataset(cfg.data);
      const auto s = data::parse_split(split);
      // eval.noise: the noisy histories sbtrec-eval evaluates (candidates drawn on the clean ones first).
      const bool noisy = cfg.eval.noise.enabled();
      if (noisy && s == data::Split::kTrain)
        throw ConfigError("eval.noise applies to evaluated splits: export --split val or test");
      if (with_candidates || noisy) {
        const auto cands = data::make_candidates(ds, s, cfg.eval.num_negatives, cfg.eval.candidate_seed);
        data::inject_noise(ds, s, cands, cfg.eval.noise, cfg.data.max_history);
        data::export_samples(ds, s, out, with_candidates ? &cands : nullptr);
      } else {
        data::export_samples(ds, s, out);
      }
      spdlog::info("wrote {} {} samples{}{} to {}", ds.split(s).size(), split, with_candidates ? " with candidates" : "",
                   noisy ? ", noise " + cfg.eval.noise.describe() : std::string(), out);
    } else if (*synth) {
      if (titles == "random") {
        const uint64_t seed = so.seed;
        so = data::random_title_defaults();
        so.seed = seed;
      }
      if (users > 0) so.num_users = users;
      if (items > 0) so.num_items = items;
      if (ring_size > 0) so.ring_size = ring_size;
      data::write_synthetic_grouplens(synth_out, so);
      spdlog::info("wrote a synthetic GroupLens-format dataset ({} users, {} items) to {}", so.num_users, so.num_items,
                   synth_out);
    }
    return 0;
  });
}
