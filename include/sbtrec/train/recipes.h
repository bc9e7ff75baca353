// The recipes by name (the config's `recipe`): what each builds and which config keys it reads.
//   encoder  the sequential encoders (SASRec, GRU4Rec, Caser) on their own
//   sft      SBT-Rec's supervised fine-tuning (SBS-AO)
// A program builds the recipe the config names and runs it on the loop (loop.h); a key the recipe
// does not read, set to anything but its default, is an error naming it (so `--set train.max_steps=5`
// on a SASRec run cannot be silently ignored).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sbtrec/config/config.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/train/loop.h"

namespace sbtrec::train {

struct RecipeInputs {
  const Config& cfg;
  const data::Dataset& ds;
  const std::string& config_yaml;  // what checkpoints record (the run's config.yaml)
  dist::ProcessGroup& group;
  bool resume = false;
};
struct RecipeSpec {
  std::function<std::unique_ptr<Recipe>(const RecipeInputs&)> make;
  // The keys the recipe reads: "section.*" for a whole section, or one key ("train.lr"). The top-level
  // keys (recipe, preset, seed, output_dir, threads) and dist.* are read by every recipe.
  std::vector<std::string> reads;
  std::string what;  // one line for messages and the key reference
  // Where the recipe's collectives run: the encoders on the CPU, SFT where the LLM runs.
  std::function<torch::Device(const Config&, const dist::World&)> device;
};
// Registers a recipe (a second registration of a name is an error); returns true for load-time use.
bool register_recipe(const std::string& name, RecipeSpec spec);
// The recipe of `name`; a ConfigError naming the key `recipe` and listing the registered ones otherwise.
const RecipeSpec& recipe_spec(const std::string& name);

// Whether `recipe` reads the config key `key` (dotted, e.g. "train.max_steps").
bool recipe_reads(const std::string& recipe, const std::string& key);

// Throws ConfigError for the first key that `cfg` sets to a non-default value and its recipe does not
// read: "train.max_steps is not read by the encoder recipe ...".
void check_keys_read(const Config& cfg);

// Builds cfg.recipe's recipe (after check_keys_read).
std::unique_ptr<Recipe> make_recipe(const RecipeInputs& inputs);

}  // namespace sbtrec::train
