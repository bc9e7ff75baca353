// Run configuration: plain option structs with defaults, filled from YAML. Unknown keys and wrong
// types are errors naming the full key path and the file; `--set a.b=v` overrides any key.
// The field list lives once, in config.cpp (visit_fields), and serves reading, writing and checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sbtrec {

struct DataOptions {
  std::string format = "grouplens";  // grouplens (raw MovieLens files) | sbtrec (imported dataset dir)
  std::string root;                  // "" = $SBTREC_DATA, else data/ml-100k (resolved on load)
  double min_rating = 3;             // grouplens: keep ratings >= this
  int max_history = 10;              // history window (most recent items)
  int min_history = 3;               // drop samples with a shorter history
  double train_fraction = 0.8;       // user split cut points int(f*N)
  double val_fraction = 0.1;
};

struct SASRecOptions {
  int num_blocks = 1;
  int num_heads = 1;
};
struct GRU4RecOptions {
  int num_layers = 1;
  double dropout = 0.0;  // on item embeddings and the final state; LLaRA's GRU4Rec has none
};
struct CaserOptions {
  int num_filters = 16;
  std::vector<int> filter_sizes = {2, 3, 4};
};

struct ModelOptions {
  std::string type = "sasrec";  // sasrec | gru4rec | caser
  int hidden_size = 64;
  int max_len = 10;             // padded sequence length T (>= data.max_history)
  double dropout = 0.1;         // SASRec and Caser (LLaRA's GRU4Rec has no dropout)
  SASRecOptions sasrec;
  GRU4RecOptions gru4rec;
  CaserOptions caser;
};

struct TrainOptions {
  int epochs = 200;
  int batch_size = 256;
  double lr = 1e-3;
  double weight_decay = 0.0;
  std::string loss = "bce";  // bce: one sampled negative per sample (LLaRA) | ce: softmax over all items
  int patience = 20;         // stop after this many evaluations without a better validation HR@1
  int eval_every = 1;        // epochs between validation runs
  int log_every = 50;        // steps between progress lines when stdout is not a terminal
};

struct EvalOptions {
  int num_negatives = 20;            // candidates = target + this many (paper: 20; llara preset: 19)
  std::uint64_t candidate_seed = 2024;  // same seed -> same candidates for every run and model
  int batch_size = 1024;
};

struct Config {
  std::string preset = "paper";  // paper | llara: applied first, explicit keys override it
  std::uint64_t seed = 42;
  std::string output_dir = "runs/default";
  int threads = 0;               // torch intra-op threads; 0 keeps torch's default
  DataOptions data;
  ModelOptions model;
  TrainOptions train;
  EvalOptions eval;
};

// Loads `path` (may be empty: defaults only), applies `overrides` ("a.b=value", YAML-typed values),
// the preset, and resolves data.root. Throws ConfigError naming the key path and the file.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same, from YAML text (`source` names it in errors).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

// The resolved config as YAML (every key, so a run can be repeated from it).
std::string config_to_yaml(const Config& config);
// The `model:` section only, as written into checkpoint directories.
ModelOptions parse_model_section(const std::string& yaml_text, const std::string& source);

// Range/consistency checks (also run by load_config); throws ConfigError naming the key.
void validate(const Config& config, const std::string& source);

}  // namespace sbtrec
