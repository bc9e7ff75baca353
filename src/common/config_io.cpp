// The config visitors (see config_io.h): Reader (YAML -> structs, strict, file:line errors), Writer
// (structs -> YAML) and Reference (structs -> the Markdown key reference of configs/README.md).
#include "sbtrec/common/config_io.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>
#include <sstream>

#include "sbtrec/common/error.h"

namespace sbtrec::config {

void unknown_choice(const std::string& where, const std::string& name, const std::vector<std::string>& names) {
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
  throw ConfigError(where + ": must be one of " + all + " (got '" + name + "')");
}

std::string show(double v) {
  std::ostringstream t;
  for (int p = 1; p <= 17; ++p) {  // shortest precision that reads back exactly (17 always does)
    t.str("");
    t.precision(p);
    t << v;
    if (std::stod(t.str()) == v) break;
  }
  return t.str();
}

Check<double> in_half_open(double lo, double hi) {
  return {[lo, hi](const double& v) {
            return v >= lo && v < hi ? std::string() : "must be in [" + show(lo) + ", " + show(hi) + ")";
          },
          "[" + show(lo) + ", " + show(hi) + ")"};
}

Check<double> greater_than(double lo) {
  return {[lo](const double& v) { return v > lo ? std::string() : "must be > " + show(lo); }, "> " + show(lo)};
}

Check<std::string> not_empty() {
  return {[](const std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); }, "not empty"};
}

Check<std::vector<int>> each_at_least(int lo, bool non_empty) {
  return {[lo, non_empty](const std::vector<int>& v) {
            if (non_empty && v.empty()) return std::string("must list at least one value");
            for (int x : v)
              if (x < lo) return "each value must be >= " + show(lo) + " (got " + show(x) + ")";
            return std::string();
          },
          std::string(non_empty ? "non-empty, " : "") + "each >= " + show(lo)};
}

Check<std::string> one_of(std::vector<std::string> allowed) {
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + a;
  return {[allowed, list](const std::string& v) {
            for (const auto& a : allowed)
              if (a == v) return std::string();
            return "'" + v + "' is not one of: " + list;
          },
          list};
}

Check<std::vector<std::string>> each_one_of(std::vector<std::string> allowed, bool non_empty) {
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  return {[allowed, non_empty, list](const std::vector<std::string>& v) {
            if (non_empty && v.empty()) return std::string("must list at least one of: " + list);
            for (const auto& x : v) {
              bool ok = false;
              for (const auto& a : allowed) ok = ok || a == x;
              if (!ok) return "'" + x + "' is not one of: " + list;
            }
            return std::string();
          },
          std::string(non_empty ? "non-empty, " : "") + "each one of: " + list};
}

namespace {

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string kind(const YAML::Node& n) {
  return n.IsMap() ? "mapping" : n.IsSequence() ? "list" : n.IsNull() ? "null" : "scalar";
}

YAML::Node parse_root(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(source + ": the top level must be a mapping of keys (e.g. 'seed: 1')");
  return root;
}

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

template <class T> const char* type_name();
template <> const char* type_name<bool>() { return "true or false"; }
template <> const char* type_name<int>() { return "an integer"; }
template <> const char* type_name<int64_t>() { return "an integer"; }
template <> const char* type_name<uint64_t>() { return "a non-negative integer"; }
template <> const char* type_name<double>() { return "a number"; }
template <> const char* type_name<std::string>() { return "a string"; }

// Reads fields from nested YAML maps; remembers consumed keys per map to report unknown ones.
class Reader : public Visitor {
 public:
  Reader(const YAML::Node& node, const std::string& prefix, const std::string& source, std::set<std::string> overridden)
      : source_(source), overridden_(std::move(overridden)) {
    frames_.push_back({node, prefix, {}});
  }

  void renamed(const char* old_key, const char* new_key, const char* since) override {
    Frame& f = frames_.back();
    f.seen.insert(old_key);
    if (!f.node.IsMap()) return;
    for (const auto& kv : f.node)  // the key's own node, so the error points at its line
      if (kv.first.as<std::string>() == old_key)
        fail(join_path(f.prefix, old_key), kv.first,
             std::string("renamed to '") + join_path(f.prefix, new_key) + "' (" + since + "); rename the key in your config");
  }

  void check_unknown() const {
    const Frame& f = frames_.back();
    if (!f.node.IsMap()) return;
    for (const auto& kv : f.node) {
      const std::string key = kv.first.as<std::string>();
      if (f.seen.count(key)) continue;
      std::string known;
      for (const auto& k : f.seen) known += (known.empty() ? "" : ", ") + k;
      fail(join_path(f.prefix, key), kv.first,
           "unknown key (known keys here: " + known + "). Check the spelling or see configs/README.md");
    }
  }

 protected:
  void value_(const char* key, bool& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, int& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, int64_t& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, uint64_t& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, double& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, std::string& v, const char*, const std::string&) override { scalar(key, v); }
  void value_(const char* key, std::vector<int>& v, const char*, const std::string&) override {
    list(key, v, "integers");
  }
  void value_(const char* key, std::vector<std::string>& v, const char*, const std::string&) override {
    list(key, v, "strings");
  }
  void choice_(const char* key, int& index, const std::vector<std::string>& names, const char*) override {
    std::string name;
    YAML::Node n = scalar(key, name);
    if (!n) return;
    std::string all;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) {
        index = (int)i;
        return;
      }
      all += (all.empty() ? "" : ", ") + names[i];
    }
    fail(join_path(frames_.back().prefix, key), n, "must be one of " + all + " (got '" + name + "')");
  }
  bool begin_section(const char* key, const char*) override {
    Frame& f = frames_.back();
    f.seen.insert(key);
    YAML::Node n = f.node.IsMap() ? f.node[key] : YAML::Node();
    const std::string path = join_path(f.prefix, key);
    if (n && !n.IsNull() && !n.IsMap()) fail(path, n, "expected a mapping of keys, got a " + kind(n));
    // An absent section is still visited (with no node) so checks run on its defaults too.
    frames_.push_back({(n && n.IsMap()) ? n : YAML::Node(YAML::NodeType::Map), path, {}});
    return true;
  }
  void end_section() override {
    check_unknown();
    frames_.pop_back();
  }
  void verify(const char* key, const std::string& problem) override {
    if (problem.empty()) return;
    const Frame& f = frames_.back();
    // Walk "a.b" below this section to find where the value was written.
    YAML::Node n = f.node;
    std::stringstream ss(key);
    for (std::string part; std::getline(ss, part, '.');) n = (n && n.IsMap()) ? YAML::Node(n[part]) : YAML::Node();
    fail(join_path(f.prefix, key), n, problem);
  }

 private:
  struct Frame {
    YAML::Node node;
    std::string prefix;
    std::set<std::string> seen;
  };

  template <class T> YAML::Node scalar(const char* key, T& value) {
    Frame& f = frames_.back();
    f.seen.insert(key);
    YAML::Node n = f.node[key];
    if (!n) return n;
    const std::string path = join_path(f.prefix, key);
    if (!n.IsScalar()) fail(path, n, std::string("expected ") + type_name<T>() + ", got a " + kind(n));
    try {
      value = n.as<T>();
    } catch (const YAML::Exception&) {
      fail(path, n, std::string("expected ") + type_name<T>() + ", got '" + n.Scalar() + "'");
    }
    return n;
  }
  template <class T> void list(const char* key, std::vector<T>& value, const char* what) {
    Frame& f = frames_.back();
    f.seen.insert(key);
    YAML::Node n = f.node[key];
    if (!n) return;
    const std::string path = join_path(f.prefix, key);
    if (!n.IsSequence()) fail(path, n, std::string("expected a list of ") + what + ", got a " + kind(n));
    std::vector<T> out;
    for (const auto& item : n) {
      try {
        if (!item.IsScalar()) throw YAML::Exception(item.Mark(), "not a scalar");
        out.push_back(item.as<T>());
      } catch (const YAML::Exception&) {
        fail(path, item, std::string("expected a list of ") + what + ", found '" + (item.IsScalar() ? item.Scalar() : kind(item)) + "'");
      }
    }
    value = out;
  }
  [[noreturn]] void fail(const std::string& path, const YAML::Node& n, const std::string& what) const {
    std::string where = overridden_.count(path) ? "--set " + path : source_;
    if (!overridden_.count(path) && n && n.Mark().line >= 0) where += ":" + std::to_string(n.Mark().line + 1);
    throw ConfigError("config key '" + path + "' (" + where + "): " + what);
  }

  const std::string& source_;
  std::set<std::string> overridden_;
  std::vector<Frame> frames_;
};

class Writer : public Visitor {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}

 protected:
  void value_(const char* key, bool& v, const char*, const std::string&) override { emit(key, v); }
  void value_(const char* key, int& v, const char*, const std::string&) override { emit(key, v); }
  void value_(const char* key, int64_t& v, const char*, const std::string&) override { emit(key, v); }
  void value_(const char* key, uint64_t& v, const char*, const std::string&) override { emit(key, v); }
  void value_(const char* key, double& v, const char*, const std::string&) override { emit(key, v); }
  void value_(const char* key, std::string& v, const char*, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  }
  void value_(const char* key, std::vector<int>& v, const char*, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << v;
  }
  void value_(const char* key, std::vector<std::string>& v, const char*, const std::string&) override {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : v) out_ << YAML::DoubleQuoted << s;
    out_ << YAML::EndSeq;
  }
  void choice_(const char* key, int& index, const std::vector<std::string>& names, const char*) override {
    out_ << YAML::Key << key << YAML::Value << names[(size_t)index];
  }
  bool begin_section(const char* key, const char*) override {
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    return true;
  }
  void end_section() override { out_ << YAML::EndMap; }

 private:
  template <class T> void emit(const char* key, const T& v) { out_ << YAML::Key << key << YAML::Value << v; }
  YAML::Emitter& out_;
};

// One Markdown row per key: | `path` | type | default | allowed | meaning |.
class Reference : public Visitor {
 public:
  std::string markdown() const {
    std::string s = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n" + rows_;
    if (!rules_.empty()) s += "\nRules across keys (checked after reading):\n\n" + rules_;
    if (!renamed_.empty()) s += "\nRenamed keys (the old spelling is an error that names the new one):\n\n"
                                "| old key | new key | since |\n|---|---|---|\n" + renamed_;
    return s;
  }
  void renamed(const char* old_key, const char* new_key, const char* since) override {
    renamed_ += "| `" + join_path(prefix(), old_key) + "` | `" + join_path(prefix(), new_key) + "` | " + since + " |\n";
  }

 protected:
  void value_(const char* key, bool& v, const char* h, const std::string& a) override {
    row(key, "bool", v ? "true" : "false", a, h);
  }
  void value_(const char* key, int& v, const char* h, const std::string& a) override { row(key, "int", show(v), a, h); }
  void value_(const char* key, int64_t& v, const char* h, const std::string& a) override {
    row(key, "int64", show(v), a, h);
  }
  void value_(const char* key, uint64_t& v, const char* h, const std::string& a) override {
    row(key, "uint64", show(v), a, h);
  }
  void value_(const char* key, double& v, const char* h, const std::string& a) override {
    row(key, "number", show(v), a, h);
  }
  void value_(const char* key, std::string& v, const char* h, const std::string& a) override {
    row(key, "string", "\"" + v + "\"", a, h);
  }
  void value_(const char* key, std::vector<int>& v, const char* h, const std::string& a) override {
    std::string d;
    for (int x : v) d += (d.empty() ? "" : ", ") + show(x);
    row(key, "list of int", "[" + d + "]", a, h);
  }
  void value_(const char* key, std::vector<std::string>& v, const char* h, const std::string& a) override {
    std::string d;
    for (const auto& x : v) d += (d.empty() ? "" : ", ") + x;
    row(key, "list of string", "[" + d + "]", a, h);
  }
  void choice_(const char* key, int& index, const std::vector<std::string>& names, const char* h) override {
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : " \\| ") + n;
    row(key, "choice", names[(size_t)index], all, h);
  }
  bool begin_section(const char* key, const char* help) override {
    stack_.push_back(join_path(prefix(), key));
    rows_ += "| **`" + prefix() + "`** | section | | | " + help + " |\n";
    return true;
  }
  void end_section() override { stack_.pop_back(); }
  void rule_(const char* key, bool, const std::string& what) override {
    rules_ += "- `" + join_path(prefix(), key) + "`: " + what + "\n";
  }

 private:
  std::string prefix() const { return stack_.empty() ? "" : stack_.back(); }
  void row(const char* key, const char* type, const std::string& def, const std::string& allowed, const char* help) {
    rows_ += "| `" + join_path(prefix(), key) + "` | " + type + " | " + def + " | " + allowed + " | " + help + " |\n";
  }
  std::vector<std::string> stack_;
  std::string rows_, rules_, renamed_;
};

}  // namespace

void read_yaml(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
               const std::function<void(Visitor&)>& visit, const std::function<void(Visitor&)>& before) {
  YAML::Node root = parse_root(yaml_text, source);
  std::set<std::string> overridden;
  for (const auto& o : overrides) apply_override(root, o, overridden);
  Reader reader(root, "", source, overridden);
  if (before) before(reader);
  visit(reader);
  reader.check_unknown();
}

bool read_yaml_section(const std::string& yaml_text, const std::string& source, const std::string& key,
                       const std::function<void(Visitor&)>& visit) {
  YAML::Node root = parse_root(yaml_text, source);
  YAML::Node n = root[key];
  if (!n) return false;
  if (!n.IsMap()) throw ConfigError("config key '" + key + "' (" + source + "): expected a mapping of keys, got a " + kind(n));
  Reader reader(n, key, source, {});
  visit(reader);
  reader.check_unknown();
  return true;
}

std::string to_yaml(const std::function<void(Visitor&)>& visit) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Writer w(out);
  visit(w);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string reference_markdown(const std::function<void(Visitor&)>& visit) {
  Reference r;
  visit(r);
  return r.markdown();
}

}  // namespace sbtrec::config
