// YAML <-> option structs. One visit_fields() per struct lists its keys; a Reader visitor converts
// and checks types (tracking which keys it consumed, so leftovers are "unknown key" errors) and a
// Writer visitor emits the resolved config.
#include "sbtrec/common/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec {
namespace {

template <class V> void visit_fields(SASRecOptions& o, V& v) {
  v.field("num_blocks", o.num_blocks);
  v.field("num_heads", o.num_heads);
}
template <class V> void visit_fields(GRU4RecOptions& o, V& v) {
  v.field("num_layers", o.num_layers);
  v.field("dropout", o.dropout);
}
template <class V> void visit_fields(CaserOptions& o, V& v) {
  v.field("num_filters", o.num_filters);
  v.field("filter_sizes", o.filter_sizes);
}
template <class V> void visit_fields(DataOptions& o, V& v) {
  v.field("format", o.format);
  v.field("root", o.root);
  v.field("min_rating", o.min_rating);
  v.field("max_history", o.max_history);
  v.field("min_history", o.min_history);
  v.field("train_fraction", o.train_fraction);
  v.field("val_fraction", o.val_fraction);
}
template <class V> void visit_fields(ModelOptions& o, V& v) {
  v.field("type", o.type);
  v.field("hidden_size", o.hidden_size);
  v.field("max_len", o.max_len);
  v.field("dropout", o.dropout);
  v.section("sasrec", o.sasrec);
  v.section("gru4rec", o.gru4rec);
  v.section("caser", o.caser);
}
template <class V> void visit_fields(TrainOptions& o, V& v) {
  v.field("epochs", o.epochs);
  v.field("batch_size", o.batch_size);
  v.field("lr", o.lr);
  v.field("weight_decay", o.weight_decay);
  v.field("loss", o.loss);
  v.field("patience", o.patience);
  v.field("eval_every", o.eval_every);
  v.field("log_every", o.log_every);
}
template <class V> void visit_fields(EvalOptions& o, V& v) {
  v.field("num_negatives", o.num_negatives);
  v.field("candidate_seed", o.candidate_seed);
  v.field("batch_size", o.batch_size);
}
template <class V> void visit_fields(Config& c, V& v) {
  v.field("preset", c.preset);
  v.field("seed", c.seed);
  v.field("output_dir", c.output_dir);
  v.field("threads", c.threads);
  v.section("data", c.data);
  v.section("model", c.model);
  v.section("train", c.train);
  v.section("eval", c.eval);
}

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

template <class T> const char* type_name();
template <> const char* type_name<int>() { return "an integer"; }
template <> const char* type_name<std::uint64_t>() { return "a non-negative integer"; }
template <> const char* type_name<double>() { return "a number"; }
template <> const char* type_name<std::string>() { return "a string"; }

// Reads fields from a YAML map; remembers consumed keys to report unknown ones.
class Reader {
 public:
  Reader(const YAML::Node& node, std::string prefix, const std::string& source,
         const std::set<std::string>& overridden)
      : node_(node), prefix_(std::move(prefix)), source_(source), overridden_(overridden) {}

  template <class T> void field(const std::string& key, T& value) {
    seen_.insert(key);
    YAML::Node n = node_[key];
    if (!n) return;
    const std::string path = join_path(prefix_, key);
    if (!n.IsScalar()) fail(path, n, std::string("expected ") + type_name<T>() + ", got a " + kind(n));
    try {
      value = n.as<T>();
    } catch (const YAML::Exception&) {
      fail(path, n, std::string("expected ") + type_name<T>() + ", got '" + n.Scalar() + "'");
    }
  }
  void field(const std::string& key, std::vector<int>& value) {
    seen_.insert(key);
    YAML::Node n = node_[key];
    if (!n) return;
    const std::string path = join_path(prefix_, key);
    if (!n.IsSequence()) fail(path, n, std::string("expected a list of integers, got a ") + kind(n));
    std::vector<int> out;
    for (const auto& item : n) {
      try {
        out.push_back(item.as<int>());
      } catch (const YAML::Exception&) {
        fail(path, item, "expected a list of integers, found '" + (item.IsScalar() ? item.Scalar() : kind(item)) + "'");
      }
    }
    value = out;
  }
  template <class S> void section(const std::string& key, S& sub) {
    seen_.insert(key);
    YAML::Node n = node_[key];
    if (!n || n.IsNull()) return;
    const std::string path = join_path(prefix_, key);
    if (!n.IsMap()) fail(path, n, std::string("expected a mapping of keys, got a ") + kind(n));
    Reader r(n, path, source_, overridden_);
    visit_fields(sub, r);
    r.check_unknown();
  }
  void check_unknown() const {
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (seen_.count(key)) continue;
      std::string known;
      for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
      fail(join_path(prefix_, key), kv.first,
           "unknown key (known keys here: " + known + "). Check the spelling or see configs/README.md");
    }
  }

 private:
  static std::string kind(const YAML::Node& n) {
    return n.IsMap() ? "mapping" : n.IsSequence() ? "list" : n.IsNull() ? "null" : "scalar";
  }
  [[noreturn]] void fail(const std::string& path, const YAML::Node& n, const std::string& what) const {
    std::string where = overridden_.count(path) ? "--set " + path : source_;
    if (!overridden_.count(path) && n.Mark().line >= 0) where += ":" + std::to_string(n.Mark().line + 1);
    throw ConfigError("config key '" + path + "' (" + where + "): " + what);
  }

  YAML::Node node_;
  std::string prefix_;
  const std::string& source_;
  const std::set<std::string>& overridden_;
  std::set<std::string> seen_;
};

class Writer {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}
  template <class T> void field(const std::string& key, T& value) { out_ << YAML::Key << key << YAML::Value << value; }
  void field(const std::string& key, std::vector<int>& value) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << value;
  }
  void field(const std::string& key, std::string& value) {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
  }
  template <class S> void section(const std::string& key, S& sub) {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    visit_fields(sub, *this);
    out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter& out_;
};

// Applies "a.b.c=value" to the YAML tree, creating maps on the way. The value is parsed as YAML,
// so numbers, booleans and [lists] keep their types.
void apply_override(YAML::Node& root, const std::string& assignment, std::set<std::string>& overridden) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + assignment + "': expected KEY=VALUE, e.g. --set train.epochs=50");
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw ConfigError("--set '" + assignment + "': empty key component in '" + path + "'");
    parts.push_back(p);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + path + ": value '" + value + "' is not valid YAML: " + e.msg);
  }
  if (!parsed || parsed.IsNull()) parsed = YAML::Node(value);  // "--set output_dir=" means empty string
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = chain.back()[parts[i]];
    if (child && !child.IsMap() && !child.IsNull())
      throw ConfigError("--set " + path + ": '" + parts[i] + "' is not a section");
    if (!child || child.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      child = chain.back()[parts[i]];
    }
    chain.push_back(child);
  }
  chain.back()[parts.back()] = parsed;
  overridden.insert(path);
}

void apply_preset(Config& c, const std::string& source) {
  if (c.preset == "paper") {
    c.eval.num_negatives = 20;
  } else if (c.preset == "llara") {
    // LLaRA's code draws 19 negatives + the target (20 candidates) although the paper says 20 + 1.
    c.eval.num_negatives = 19;
  } else {
    throw ConfigError("config key 'preset' (" + source + "): unknown preset '" + c.preset +
                      "'; use 'paper' or 'llara'");
  }
}

void resolve_paths(Config& c) {
  if (c.data.root.empty()) {
    const char* env = std::getenv("SBTREC_DATA");
    c.data.root = (env && *env) ? env : "data/ml-100k";
  }
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(source + ": the top level must be a mapping of keys (e.g. 'seed: 1')");
  std::set<std::string> overridden;
  for (const auto& o : overrides) apply_override(root, o, overridden);

  Config c;
  // The preset sets defaults first, so any key written in the file or on --set wins over it.
  if (root["preset"]) {
    Reader pre(root, "", source, overridden);
    pre.field("preset", c.preset);
  }
  apply_preset(c, source);
  Reader reader(root, "", source, overridden);
  visit_fields(c, reader);
  reader.check_unknown();
  resolve_paths(c);
  validate(c, source);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config("", "<defaults>", overrides);
  const std::string text = read_file(path, "Pass an existing YAML file to --config (see configs/).");
  return parse_config(text, path, overrides);
}

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  YAML::Emitter out;
  out << YAML::BeginMap;
  Writer w(out);
  visit_fields(copy, w);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

ModelOptions parse_model_section(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!root.IsMap() || !root["model"])
    throw ConfigError(source + ": no 'model:' section (a checkpoint's config.yaml must describe its model)");
  ModelOptions m;
  std::set<std::string> none;
  YAML::Node only_model(YAML::NodeType::Map);
  only_model["model"] = root["model"];
  Reader r(only_model, "", source, none);
  r.section("model", m);
  return m;
}

void validate(const Config& c, const std::string& source) {
  auto require = [&](bool ok, const std::string& key, const std::string& what) {
    if (!ok) throw ConfigError("config key '" + key + "' (" + source + "): " + what);
  };
  require(c.data.format == "grouplens" || c.data.format == "sbtrec", "data.format",
          "must be 'grouplens' (raw MovieLens u.data/u.item) or 'sbtrec' (a dir made by scripts/import_llara_data.py)");
  require(c.data.max_history >= 1, "data.max_history", "must be >= 1");
  require(c.data.min_history >= 0 && c.data.min_history <= c.data.max_history, "data.min_history",
          "must be between 0 and data.max_history");
  require(c.data.train_fraction > 0 && c.data.val_fraction >= 0 && c.data.train_fraction + c.data.val_fraction < 1,
          "data.train_fraction", "train_fraction > 0, val_fraction >= 0 and their sum < 1 are required");
  const auto& m = c.model;
  require(m.type == "sasrec" || m.type == "gru4rec" || m.type == "caser", "model.type",
          "must be one of sasrec, gru4rec, caser (got '" + m.type + "')");
  require(m.hidden_size >= 1, "model.hidden_size", "must be >= 1");
  require(m.max_len >= c.data.max_history, "model.max_len", "must be >= data.max_history");
  require(m.dropout >= 0 && m.dropout < 1, "model.dropout", "must be in [0, 1)");
  require(m.sasrec.num_blocks >= 1, "model.sasrec.num_blocks", "must be >= 1");
  require(m.sasrec.num_heads >= 1 && m.hidden_size % m.sasrec.num_heads == 0, "model.sasrec.num_heads",
          "must be >= 1 and divide model.hidden_size");
  require(m.gru4rec.num_layers >= 1, "model.gru4rec.num_layers", "must be >= 1");
  require(m.gru4rec.dropout >= 0 && m.gru4rec.dropout < 1, "model.gru4rec.dropout", "must be in [0, 1)");
  require(m.caser.num_filters >= 1, "model.caser.num_filters", "must be >= 1");
  require(!m.caser.filter_sizes.empty(), "model.caser.filter_sizes", "must list at least one height");
  for (int h : m.caser.filter_sizes)
    require(h >= 1 && h <= m.max_len, "model.caser.filter_sizes", "each height must be in [1, model.max_len]");
  const auto& t = c.train;
  require(t.epochs >= 0, "train.epochs", "must be >= 0");
  require(t.batch_size >= 1, "train.batch_size", "must be >= 1");
  require(t.lr > 0, "train.lr", "must be > 0");
  require(t.weight_decay >= 0, "train.weight_decay", "must be >= 0");
  require(t.loss == "bce" || t.loss == "ce", "train.loss", "must be 'bce' or 'ce'");
  require(t.patience >= 1, "train.patience", "must be >= 1");
  require(t.eval_every >= 1, "train.eval_every", "must be >= 1");
  require(t.log_every >= 1, "train.log_every", "must be >= 1");
  require(c.eval.num_negatives >= 1, "eval.num_negatives", "must be >= 1");
  require(c.eval.batch_size >= 1, "eval.batch_size", "must be >= 1");
  require(c.threads >= 0, "threads", "must be >= 0 (0 = torch default)");
  require(!c.output_dir.empty(), "output_dir", "must not be empty");
}

}  // namespace sbtrec
