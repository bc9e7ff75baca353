// A run's whole configuration: the top-level keys plus one section per stage, each section's struct
// and keys declared beside its stage (data/options.h, encoder/options.h, quantizer/options.h,
// aligner/options.h, prompt/options.h, llm/options.h, lora.h, generation.h, train/options.h,
// eval/options.h, dist/options.h). Strict YAML in, resolved YAML out, the key reference (configs/README.md) generated
// from the same field lists.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sbtrec/aligner/options.h"
#include "sbtrec/common/config_io.h"
#include "sbtrec/data/options.h"
#include "sbtrec/dist/options.h"
#include "sbtrec/encoder/options.h"
#include "sbtrec/eval/options.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/lora.h"
#include "sbtrec/llm/options.h"
#include "sbtrec/prompt/options.h"
#include "sbtrec/quantizer/options.h"
#include "sbtrec/train/options.h"
#include "sbtrec/train/recipe_names.h"

namespace sbtrec {

enum class Preset { kPaper, kLLaRA };
inline const config::Choices<Preset>& presets() {
  static const config::Choices<Preset> c = {{"paper", Preset::kPaper}, {"llara", Preset::kLLaRA}};
  return c;
}

struct Config {
  std::string recipe = "encoder";  // what sbtrec-train runs (train/recipes.h): encoder | sft
  Preset preset = Preset::kPaper;  // applied first, explicit keys override it
  std::uint64_t seed = 42;
  std::string output_dir = "runs/default";
  int threads = 0;  // torch intra-op threads; 0: the process's share of the cores (common/core_share.h)
  DataOptions data;
  EncoderOptions encoder;
  quantizer::QuantizerOptions quantizer;
  llm::LlmOptions llm;
  llm::LoraOptions lora;
  llm::GenerationOptions generation;
  aligner::AlignerOptions aligner;
  prompt::PromptOptions prompt;
  TrainOptions train;
  EvalOptions eval;
  dist::DistOptions dist;
};

void visit_fields(Config& c, config::Visitor& v);

// Loads `path` (may be empty: defaults only), applies `overrides` ("a.b=value", YAML-typed values),
// the preset, and resolves data.root. Relative paths written in a file (output_dir, data.root,
// encoder.checkpoint, quantizer.codebooks, llm.model, prompt.templates) resolve against that file's
// directory, as `base:` does, whichever file of a base chain wrote them; --set values are taken as
// given (relative to the working directory). Throws ConfigError naming the key path and the file:line.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from YAML text (`source` names it in errors).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
// The resolved config as YAML (every key, so a run can be repeated from it). With `written_to` (the
// directory the YAML is written into): every path absolute and output_dir relative to that directory,
// so the file stays valid when the directory is moved or read from elsewhere.
std::string config_to_yaml(const Config& config, const std::string& written_to = "");
// The key reference of every section, as configs/README.md embeds it.
std::string config_reference_markdown();
// The keys (full paths, "train.max_steps") whose value differs from the default under the same preset:
// what the file, its bases and --set changed.
std::vector<std::string> non_default_keys(const Config& config);

}  // namespace sbtrec
