// The run configuration (see config.h): top-level keys, the preset, and path resolution.
#include "sbtrec/train/config.h"

#include <cstdlib>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>

namespace sbtrec {
namespace {

void apply_preset(Config& c) {
  // LLaRA's code draws 19 negatives + the target (20 candidates) although the paper says 20 + 1.
  c.eval.num_negatives = c.preset == Preset::kLLaRA ? 19 : 20;
}

void visit_preset(Config& c, config::Visitor& v) {
  v.field("preset", c.preset, "paper: 20 negatives + the target (as the paper states); llara: 19 + the target (LLaRA's code)",
          presets());
}

}  // namespace

void visit_fields(Config& c, config::Visitor& v) {
  visit_preset(c, v);
  v.field("seed", c.seed, "seed of initialisation, batching and dropout");
  v.field("output_dir", c.output_dir, "run directory (config.yaml, metrics.jsonl, checkpoint/, results.json)",
          config::not_empty());
  v.field("threads", c.threads, "torch intra-op threads; 0 keeps torch's default", config::at_least(0));
  v.section("data", c.data, "dataset and LLaRA's windowing protocol");
  v.renamed("model", "encoder", "sbtrec 0.2");
  v.section("encoder", c.encoder, "the sequential recommender (SASRec, GRU4Rec, Caser)");
  v.section("quantizer", c.quantizer, "HDSD + MBSR: residual quantizer (L levels x K codes) of the encoder's vectors");
  v.section("llm", c.llm, "the language model checkpoint and where it runs");
  v.section("lora", c.lora, "LoRA adapters on the LLM's projections (PEFT's semantics)");
  v.section("generation", c.generation, "decoding of the answer title");
  v.section("aligner", c.aligner, "the RAM-Aligner: behavioural vector -> one LLM token embedding");
  v.section("prompt", c.prompt, "hybrid prompt templates (titles + behavioural-token slots)");
  v.section("train", c.train, "the training loop");
  v.section("eval", c.eval, "candidate sets and scoring");
  v.section("dist", c.dist, "data-parallel training (c10d); the process layout comes from the launcher's environment");
  v.rule("encoder.max_len", c.encoder.max_len >= c.data.max_history, "must be >= data.max_history");
}

Config parse_config(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides) {
  Config c;
  // The preset sets defaults first, so any key written in the file or on --set wins over it.
  config::read_yaml(yaml_text, source, overrides, config::visiting(c), [&](config::Visitor& v) {
    visit_preset(c, v);
    apply_preset(c);
  });
  if (c.data.root.empty()) {
    const char* env = std::getenv("SBTREC_DATA");
    c.data.root = (env && *env) ? env : "data/ml-100k";
  }
  return c;
}

namespace {

// Maps merge key by key (recursively); anything else in `over` replaces what `base` has.
YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const auto key = kv.first.as<std::string>();
    const YAML::Node& view = out;
    out[key] = view[key] ? merge_yaml(view[key], kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

// The file's YAML with its `base:` chain merged in (base first); `chain` lists the files read.
YAML::Node load_with_base(const std::string& path, const std::string& text, std::vector<std::string>& chain) {
  const std::string me = std::filesystem::weakly_canonical(path).string();
  for (const auto& c : chain)
    if (std::filesystem::weakly_canonical(c).string() == me)
      throw ConfigError(path + ": key 'base' makes a loop (" + chain.front() + " ... -> " + path + ")");
  chain.push_back(path);
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!node.IsMap() || !node["base"]) return node;
  const auto& b = node["base"];
  if (!b.IsScalar() || b.as<std::string>().empty())
    throw ConfigError(path + ":" + std::to_string(b.Mark().line + 1) + ": key 'base' must be a file path (relative to this file)");
  const auto base_path = (std::filesystem::path(path).parent_path() / b.as<std::string>()).lexically_normal().string();
  if (!path_exists(base_path))
    throw ConfigError(path + ":" + std::to_string(b.Mark().line + 1) + ": key 'base': '" + base_path +
                      "' not found (the path is relative to this file)");
  YAML::Node base = load_with_base(base_path, read_file(base_path), chain);
  node.remove("base");
  return merge_yaml(base, node);
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config("", "<defaults>", overrides);
  const std::string text = read_file(path, "Pass an existing YAML file to --config (see configs/).");
  std::vector<std::string> chain;
  const YAML::Node merged = load_with_base(path, text, chain);
  if (chain.size() == 1) return parse_config(text, path, overrides);  // keeps the file's own line numbers
  std::string source = path;
  for (size_t i = 1; i < chain.size(); ++i) source += " <- " + chain[i];
  return parse_config(YAML::Dump(merged), source, overrides);
}

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  return config::to_yaml(config::visiting(copy));
}

std::string config_reference_markdown() {
  Config defaults;
  return config::reference_markdown(config::visiting(defaults));
}

}  // namespace sbtrec
