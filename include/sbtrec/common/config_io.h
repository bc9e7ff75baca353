// The field visitor behind every config section. A stage declares its options as a plain struct and,
// next to it, `void visit_fields(ItsOptions&, config::Visitor&)` listing each key once with its help
// text and check; reading YAML (strict, errors with file:line), writing the resolved config, and the
// key reference in configs/README.md are all visitors over that one list (see config_io.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sbtrec::config {

// A check on one value: `test` returns "" when the value is fine, else what is wrong ("must be >= 1");
// `describe` is the allowed range as the key reference prints it.
template <class T> struct Check {
  std::function<std::string(const T&)> test;
  std::string describe;
};

// Numbers as the key reference and error messages print them (shortest form that reads back).
std::string show(double v);
inline std::string show(int v) { return std::to_string(v); }
inline std::string show(int64_t v) { return std::to_string(v); }
inline std::string show(uint64_t v) { return std::to_string(v); }

template <class T> Check<T> at_least(T lo) {
  return {[lo](const T& v) { return v >= lo ? std::string() : "must be >= " + show(lo); }, ">= " + show(lo)};
}
// lo <= v < hi (probabilities such as dropout).
Check<double> in_half_open(double lo, double hi);
// lo < v (learning rates).
Check<double> greater_than(double lo);
Check<std::string> not_empty();
// Every element passes `each` (and the list is not empty when `non_empty`).
Check<std::vector<int>> each_at_least(int lo, bool non_empty);
Check<std::vector<std::string>> each_one_of(std::vector<std::string> allowed, bool non_empty);
// One of `allowed` (names known only at run time, such as the registered evaluators).
Check<std::string> one_of(std::vector<std::string> allowed);

// An enum spelled as named choices in YAML; parsed once into the enum, never compared as a string later.
template <class E> using Choices = std::vector<std::pair<const char*, E>>;
template <class E> const char* choice_name(const Choices<E>& choices, E value) {
  for (const auto& [name, v] : choices)
    if (v == value) return name;
  return "?";
}
// `name` as one of `choices` (command-line options naming the same choices as a config key); throws
// ConfigError naming `where` and listing the choices otherwise.
[[noreturn]] void unknown_choice(const std::string& where, const std::string& name, const std::vector<std::string>& names);
template <class E> E parse_choice(const Choices<E>& choices, const std::string& name, const std::string& where) {
  std::vector<std::string> names;
  for (const auto& [n, v] : choices) {
    if (name == n) return v;
    names.emplace_back(n);
  }
  unknown_choice(where, name, names);
}

class Visitor {
 public:
  virtual ~Visitor() = default;

  // One key. `help` is one line for the key reference; `check` is run on the value after reading.
  template <class T> void field(const char* key, T& value, const char* help, const Check<T>& check = {}) {
    value_(key, value, help, check.describe);
    if (check.test) verify(key, check.test(value));
  }
  // An enum key, written and read by the names in `choices`.
  template <class E> void field(const char* key, E& value, const char* help, const Choices<E>& choices) {
    std::vector<std::string> names;
    int index = 0;
    for (size_t i = 0; i < choices.size(); ++i) {
      names.emplace_back(choices[i].first);
      if (choices[i].second == value) index = (int)i;
    }
    choice_(key, index, names, help);
    value = choices[(size_t)index].second;
  }
  // A nested mapping whose struct has its own visit_fields (found by argument-dependent lookup).
  template <class S> void section(const char* key, S& sub, const char* help) {
    if (!begin_section(key, help)) return;
    visit_fields(sub, *this);
    end_section();
  }
  // A rule across keys of this section (or below it: "sasrec.num_heads"); checked after reading.
  void rule(const char* key, bool ok, const std::string& what) { rule_(key, ok, what); }
  // `old_key` of this section was renamed to `new_key`: reading it is an error that says so.
  virtual void renamed(const char* old_key, const char* new_key, const char* since) {}

 protected:
  virtual void value_(const char* key, bool& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, int& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, int64_t& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, uint64_t& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, double& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, std::string& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, std::vector<int>& v, const char* help, const std::string& allowed) = 0;
  virtual void value_(const char* key, std::vector<std::string>& v, const char* help, const std::string& allowed) = 0;
  virtual void choice_(const char* key, int& index, const std::vector<std::string>& names, const char* help) = 0;
  virtual bool begin_section(const char* key, const char* help) = 0;
  virtual void end_section() = 0;
  // A failed check or rule on `key` ("" = passed). Readers throw ConfigError naming file:line.
  virtual void verify(const char* key, const std::string& problem) {}
  virtual void rule_(const char* key, bool ok, const std::string& what) {
    if (!ok) verify(key, what);
  }
};

// Reads YAML text into whatever `visit` visits: unknown keys, wrong types and failed checks throw
// ConfigError naming the full key path and `source`:line (or the --set that gave the value).
// `overrides` are "a.b=value" assignments applied on top (values parsed as YAML). `before` (optional)
// is visited first with the same reader, for keys such as a preset that set defaults of the rest.
void read_yaml(const std::string& yaml_text, const std::string& source, const std::vector<std::string>& overrides,
               const std::function<void(Visitor&)>& visit, const std::function<void(Visitor&)>& before = {});

// Reads only the mapping under top-level `key` of `yaml_text` (e.g. a checkpoint's `encoder:`);
// returns false when the text has no such key. Other top-level keys are ignored.
bool read_yaml_section(const std::string& yaml_text, const std::string& source, const std::string& key,
                       const std::function<void(Visitor&)>& visit);

// The visited values as YAML (every key, so a run can be repeated from it).
std::string to_yaml(const std::function<void(Visitor&)>& visit);

// The key reference as Markdown tables (key, type, default, allowed, meaning) plus renamed keys.
std::string reference_markdown(const std::function<void(Visitor&)>& visit);

template <class S> std::function<void(Visitor&)> visiting(S& options) {
  return [&options](Visitor& v) { visit_fields(options, v); };
}

}  // namespace sbtrec::config
