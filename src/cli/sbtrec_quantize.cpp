// sbtrec-quantize: fits HDSD's codebooks (k-means++ per level) on a frozen encoder's vectors and writes
// codebooks, codes, statistics and the resolved config into --out as one atomic directory; stdout gets
// a short summary (per kind: error, usage, perplexity, collisions; titles that share a code tuple).
#include <filesystem>

#include "cli_common.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/quantizer/hdsd.h"
#include "sbtrec/train/run.h"

using namespace sbtrec;

namespace {

void print_kind(const char* kind, const nlohmann::json& j) {
  const auto& in = j["input"];
  const auto& q = j["quantizer"];
  std::cout << fmt::format("{}: {} vectors, width {}, mean norm {:.4f} (std {:.4f})\n", kind, in["vectors"].get<int64_t>(),
                           in["dim"].get<int64_t>(), in["mean_norm"].get<double>(), in["std_norm"].get<double>());
  int l = 1;
  for (const auto& lv : q["levels"])
    std::cout << fmt::format("  level {}: codes used {:.3f}, perplexity {:.1f}, relative error {:.4f}\n", l++,
                             lv["usage"].get<double>(), lv["perplexity"].get<double>(), lv["relative_error"].get<double>());
  std::cout << fmt::format("  relative error {:.4f}; {} distinct code tuples, {} collisions (rate {:.3f}), largest shared "
                           "tuple {}\n",
                           q["relative_error"].get<double>(), q["distinct_tuples"].get<int64_t>(), q["collisions"].get<int64_t>(),
                           q["collision_rate"].get<double>(), q["largest_shared_tuple"].get<int64_t>());
  if (j.contains("index"))
    std::cout << fmt::format("  collisions index: an extra code of {} rows (scale {:.4f}); {} collisions left\n",
                             j["index"]["codes"].get<int64_t>(), j["index"]["rms"].get<double>(),
                             j["index"]["collisions"].get<int64_t>());
}

void print_shared_titles(const nlohmann::json& items) {
  const auto& groups = items["shared_tuples"];
  std::cout << fmt::format("  {} items in {} groups share a full code tuple", items["items_sharing_a_tuple"].get<int64_t>(),
                           groups.size());
  std::cout << (groups.empty() ? "\n" : ", e.g.:\n");
  for (size_t g = 0; g < std::min<size_t>(groups.size(), 3); ++g) {
    std::string titles;
    for (const auto& t : groups[g]["titles"]) titles += (titles.empty() ? "" : " | ") + t.get<std::string>();
    std::cout << "    " << groups[g]["codes"].dump() << ": " << titles << "\n";
  }
}

// Genre purity per level against its shuffled baseline (quantizer/genre_purity.h).
void print_purity(const nlohmann::json& p) {
  auto line = [](const std::string& what, const nlohmann::json& x) {
    std::cout << fmt::format("    {:<22} {:.3f} (shuffled {:.3f} +- {:.3f}; {} members, {} codes)\n", what,
                             x["purity"].get<double>(), x["shuffled"].get<double>(), x["shuffled_sd"].get<double>(),
                             x["members"].get<int64_t>(), x["codes"].get<int64_t>());
  };
  std::cout << "  genre purity (share of a code's members carrying its most common genre):\n";
  for (const char* kind : {"items", "user"}) {
    if (!p.contains(kind)) continue;
    for (const auto& l : p[kind]["levels"]) line(std::string(kind) + " level " + std::to_string(l["level"].get<int>()), l);
    if (p[kind].contains("tuple")) line(std::string(kind) + " full tuple", p[kind]["tuple"]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-quantize: fit HDSD's residual codebooks on a frozen encoder's item / user vectors"};
  cli::ConfigArgs cfg_args;
  cfg_args.add_to(app);
  std::string encoder_path, out;
  bool overwrite = false;
  app.add_option("--encoder", encoder_path, "Encoder checkpoint directory (model.safetensors + config.yaml), or the run directory holding it in checkpoint/")
      ->required();
  app.add_option("--out", out, "Output directory: codebooks.safetensors, codes.safetensors, stats.json, config.yaml")->required();
  app.add_flag("--overwrite", overwrite, "Replace a non-empty --out directory");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    train::apply_run_settings(cfg);
    // Refused before any work, and nothing is written until every input has been read.
    if (path_exists(out) && !std::filesystem::is_directory(out))
      throw ConfigError("--out '" + out + "' is a file, not a directory");
    if (nonempty_dir(out) && !overwrite)
      throw ConfigError("--out '" + out + "' is not empty; pass --overwrite to replace it, or choose another directory");
    const auto ds = data::load_dataset(cfg.data);
    const std::string dir = resolve_checkpoint_dir(encoder_path, "model.safetensors");
    EncoderOptions eo;
    auto enc = encoder::load_encoder(dir, ds.num_items, &eo);
    spdlog::info("{}: {} items, {} training samples; encoder {} ({})", ds.name, ds.num_items, ds.train.size(), dir,
                 encoder_name(eo.type));
    const uint64_t seed = quantizer::kmeans_seed(cfg.quantizer, cfg.seed);
    auto fit = quantizer::fit_hdsd(cfg.quantizer, seed, *enc, ds, eo.max_len, cfg.eval.batch_size);
    fit.stats["encoder"] = dir;
    quantizer::save_hdsd(out, fit, config_to_yaml(cfg, out));
    std::cout << fmt::format("HDSD on {}: {} levels x {} codes, inputs {}, normalize {}, collisions {}, seed {}\n", ds.name,
                             cfg.quantizer.levels, cfg.quantizer.codes,
                             config::choice_name(quantizer::quantizer_inputs(), cfg.quantizer.inputs),
                             cfg.quantizer.normalize ? "true" : "false",
                             config::choice_name(quantizer::collisions_choices(), cfg.quantizer.collisions), seed);
    if (fit.stats.contains("items")) {
      print_kind("items", fit.stats["items"]);
      print_shared_titles(fit.stats["items"]);
    }
    if (fit.stats.contains("user")) print_kind("user (training histories)", fit.stats["user"]);
    if (fit.stats.contains("genre_purity")) print_purity(fit.stats["genre_purity"]);
    else std::cout << "  genre purity: unmeasured (" << ds.name << " has no item genres)\n";
    std::cout << "wrote " << out << "/{codebooks.safetensors, codes.safetensors, stats.json, config.yaml}\n";
    return 0;
  });
}
