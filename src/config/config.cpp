// The run configuration (see config.h): top-level keys, the preset, and path resolution.
#include "sbtrec/config/config.h"

#include <cstdlib>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <sstream>

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
  v.field("recipe", c.recipe,
          "what sbtrec-train runs: encoder (a sequential encoder on its own) or sft (SBT-Rec's SBS-AO); a key the "
          "recipe does not read is an error",
          config::one_of(train::recipe_names()));
  visit_preset(c, v);
  v.field("seed", c.seed, "seed of initialisation, batching and dropout");
  v.field("output_dir", c.output_dir, "run directory (config.yaml, metrics.jsonl, checkpoint/, results.json)",
          config::not_empty());
  v.field("threads", c.threads,
          "torch intra-op threads; 0: this process's share of the cores (those other sbtrec processes have "
          "not taken, at least one; OMP_NUM_THREADS when set)",
          config::at_least(0));
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

// The keys that name files or directories, resolved against the file that wrote them.
struct PathKey {
  const char* key;
  std::string& (*get)(Config&);
};
const PathKey kPathKeys[] = {
    {"output_dir", [](Config& c) -> std::string& { return c.output_dir; }},
    {"data.root", [](Config& c) -> std::string& { return c.data.root; }},
    {"encoder.checkpoint", [](Config& c) -> std::string& { return c.encoder.checkpoint; }},
    {"quantizer.codebooks", [](Config& c) -> std::string& { return c.quantizer.codebooks; }},
    {"llm.model", [](Config& c) -> std::string& { return c.llm.model; }},
    {"prompt.templates", [](Config& c) -> std::string& { return c.prompt.templates; }},
    {"train.init_from", [](Config& c) -> std::string& { return c.train.init_from; }},
};
// A path to resolve: not empty, not absolute, not the built-in model's name.
bool relative_path(const PathKey& k, const std::string& v) {
  return !v.empty() && !std::filesystem::path(v).is_absolute() && !(std::string(k.key) == "llm.model" && v == "default");
}
bool yaml_has(const YAML::Node& n, const std::vector<std::string>& parts, size_t i = 0) {
  if (i == parts.size()) return true;
  if (!n.IsMap()) return false;
  const YAML::Node child = n[parts[i]];
  return child && yaml_has(child, parts, i + 1);
}
std::vector<std::string> key_parts(const std::string& dotted) {
  std::vector<std::string> parts;
  std::stringstream ss(dotted);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  return parts;
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config("", "<defaults>", overrides);
  const std::string text = read_file(path, "Pass an existing YAML file to --config (see configs/).");
  std::vector<std::string> chain;
  const YAML::Node merged = load_with_base(path, text, chain);
  Config c;
  if (chain.size() == 1) {
    c = parse_config(text, path, overrides);  // keeps the file's own line numbers
  } else {
    std::string source = path;
    for (size_t i = 1; i < chain.size(); ++i) source += " <- " + chain[i];
    c = parse_config(YAML::Dump(merged), source, overrides);
  }
  // Each relative path against the directory of the file that wrote it (the first of the chain, child
  // first, to hold the key); --set values stay as given.
  std::vector<YAML::Node> files;  // the chain's own YAML, child first, read once
  for (const auto& file : chain) files.push_back(YAML::LoadFile(file));
  for (const auto& k : kPathKeys) {
    bool overridden = false;
    for (const auto& o : overrides) overridden = overridden || o.rfind(std::string(k.key) + "=", 0) == 0;
    std::string& v = k.get(c);
    if (overridden || !relative_path(k, v)) continue;
    for (size_t i = 0; i < chain.size(); ++i)
      if (yaml_has(files[i], key_parts(k.key))) {
        auto p = (std::filesystem::path(chain[i]).parent_path() / v).lexically_normal();
        if (p.has_parent_path() && p.filename().empty()) p = p.parent_path();  // "dir/." -> "dir", not "dir/"
        v = p.string();
        break;
      }
  }
  return c;
}

std::string config_to_yaml(const Config& config, const std::string& written_to) {
  Config copy = config;
  if (!written_to.empty()) {
    namespace fs = std::filesystem;
    for (const auto& k : kPathKeys) {
      std::string& v = k.get(copy);
      if (!relative_path(k, v) && !(std::string(k.key) == "output_dir")) continue;
      if (std::string(k.key) == "output_dir")
        v = fs::absolute(v).lexically_normal().lexically_relative(fs::absolute(written_to).lexically_normal()).string();
      else
        v = fs::absolute(v).lexically_normal().string();
      if (v.empty()) v = ".";
    }
  }
  return config::to_yaml(config::visiting(copy));
}

namespace {
void flatten(const YAML::Node& n, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) flatten(kv.second, (prefix.empty() ? "" : prefix + ".") + kv.first.as<std::string>(), out);
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out[prefix] = e.c_str();
}
}  // namespace

std::vector<std::string> non_default_keys(const Config& c) {
  Config d = parse_config("", "<defaults>", {std::string("preset=") + config::choice_name(presets(), c.preset)});
  d.recipe = c.recipe;
  d.data.root = c.data.root;  // resolved from $SBTREC_DATA when not given: never a key the user changed
  std::map<std::string, std::string> mine, defaults;
  flatten(YAML::Load(config_to_yaml(c)), "", mine);
  flatten(YAML::Load(config_to_yaml(d)), "", defaults);
  std::vector<std::string> out;
  for (const auto& [k, v] : mine)
    if (!defaults.count(k) || defaults.at(k) != v) out.push_back(k);
  return out;
}

std::string config_reference_markdown() {
  Config defaults;
  return config::reference_markdown(config::visiting(defaults));
}

}  // namespace sbtrec
