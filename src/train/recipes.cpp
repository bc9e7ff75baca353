// The recipe registry and the check of the keys each reads (see recipes.h).
#include "sbtrec/train/recipes.h"

#include <map>

#include "sbtrec/common/error.h"
#include "sbtrec/train/encoder_trainer.h"
#include "sbtrec/train/recipe_names.h"
#include "sbtrec/train/sbtrec_trainer.h"

namespace sbtrec::train {

namespace {

// The registry, with the built-in recipes in it from its first use.
std::map<std::string, RecipeSpec>& registry() {
  static std::map<std::string, RecipeSpec> r = {
      {"encoder",
       {[](const RecipeInputs& in) { return make_encoder_recipe(in.cfg, in.ds, in.config_yaml, in.group); },
        {"data.*", "encoder.type", "encoder.hidden_size", "encoder.max_len", "encoder.dropout", "encoder.sasrec.*",
         "encoder.gru4rec.*", "encoder.caser.*", "train.epochs", "train.batch_size", "train.lr", "train.weight_decay",
         "train.loss", "train.monitor", "train.patience", "train.eval_every", "train.log_every", "eval.num_negatives",
         "eval.candidate_seed", "eval.batch_size"},
        "a sequential encoder (SASRec, GRU4Rec, Caser) trained on its own",
        [](const Config&, const dist::World&) { return torch::Device(torch::kCPU); }}},
      {"sft",
       {[](const RecipeInputs& in) { return make_sft_recipe(in.cfg, in.ds, in.config_yaml, in.group, !in.resume); },
        {"data.*", "encoder.checkpoint", "encoder.max_len", "quantizer.*", "llm.*", "lora.*", "generation.*",
         "aligner.*", "prompt.*", "train.epochs", "train.batch_size", "train.lr", "train.monitor", "train.patience",
         "train.eval_every", "train.log_every", "train.paradigm", "train.two_stage_fraction", "train.optimizer",
         "train.codebooks.*", "train.aligner.*", "train.lora.*", "train.warmup_ratio", "train.min_lr_ratio",
         "train.accumulation", "train.max_grad_norm", "train.max_steps", "train.curve_every", "train.curve_cases",
         "train.group_stats", "train.objective", "train.init_from", "train.preference.*", "eval.*"},
        "SBT-Rec's supervised fine-tuning (SBS-AO over codebooks, aligners and LoRA)",
        [](const Config& c, const dist::World& w) { return dist::rank_device(c.llm.device, w); }}}};
  return r;
}

bool reads(const RecipeSpec& spec, const std::string& key) {
  for (const char* always : {"recipe", "preset", "seed", "output_dir", "threads"})
    if (key == always) return true;
  if (key.rfind("dist.", 0) == 0) return true;
  for (const auto& pattern : spec.reads) {
    if (pattern == key) return true;
    if (pattern.size() > 2 && pattern.compare(pattern.size() - 2, 2, ".*") == 0 &&
        key.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0)
      return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& [name, spec] : registry()) names.push_back(name);
  return names;
}

bool register_recipe(const std::string& name, RecipeSpec spec) {
  if (!registry().emplace(name, std::move(spec)).second) throw Error("recipe '" + name + "' is registered twice");
  return true;
}

const RecipeSpec& recipe_spec(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) config::unknown_choice("recipe", name, recipe_names());
  return it->second;
}

bool recipe_reads(const std::string& recipe, const std::string& key) { return reads(recipe_spec(recipe), key); }

void check_keys_read(const Config& cfg) {
  const auto& spec = recipe_spec(cfg.recipe);
  for (const auto& key : non_default_keys(cfg)) {
    if (reads(spec, key)) continue;
    std::string readers;
    for (const auto& [name, other] : registry())
      if (name != cfg.recipe && reads(other, key)) readers += (readers.empty() ? "" : ", ") + name;
    throw ConfigError(key + " is not read by the " + cfg.recipe + " recipe (" + spec.what + "), so it would be ignored: " +
                      "remove it" + (readers.empty() ? std::string() : " or choose a recipe that reads it (recipe: " + readers + ")"));
  }
}

std::unique_ptr<Recipe> make_recipe(const RecipeInputs& inputs) {
  check_keys_read(inputs.cfg);
  return recipe_spec(inputs.cfg.recipe).make(inputs);
}

}  // namespace sbtrec::train
