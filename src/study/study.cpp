// See study.h.
#include "sbtrec/study/study.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "sbtrec/common/digest.h"
#include "sbtrec/common/error.h"
#include "sbtrec/config/config.h"
#include "sbtrec/data/noise.h"
#include "sbtrec/eval/registry.h"
#include "sbtrec/quantizer/hdsd.h"
#include "sbtrec/train/recipes.h"

namespace sbtrec::study {
namespace fs = std::filesystem;
namespace {

struct Reader {
  std::string file;
  [[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& what) const {
    const int line = n.IsDefined() && n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
    throw ConfigError(file + (line ? ":" + std::to_string(line) : "") + ": " + key + ": " + what);
  }
  void only_keys(const YAML::Node& n, const std::string& where, const std::set<std::string>& keys) const {
    if (!n.IsMap()) fail(n, where, "must be a mapping");
    for (const auto& kv : n) {
      const auto k = kv.first.as<std::string>();
      if (!keys.count(k)) {
        std::string list;
        for (const auto& x : keys) list += (list.empty() ? "" : ", ") + x;
        fail(kv.first, where.empty() ? k : where + "." + k, "unknown key (a study reads " + list + ")");
      }
    }
  }
  std::string text(const YAML::Node& n, const std::string& key) const {
    if (!n || !n.IsScalar() || n.as<std::string>().empty()) fail(n, key, "must be a non-empty text");
    return n.as<std::string>();
  }
  std::string path(const YAML::Node& n, const std::string& key) const {
    fs::path p = text(n, key);
    if (p.is_relative()) p = fs::path(file).parent_path() / p;
    p = p.lexically_normal();
    if (!fs::exists(p)) fail(n, key, p.string() + " does not exist");
    return fs::absolute(p).string();
  }
  // `set:` as a mapping of dotted keys (or a list of "key=value"), in the file's order.
  std::vector<std::string> sets(const YAML::Node& n, const std::string& key) const {
    std::vector<std::string> out;
    if (!n) return out;
    if (n.IsMap()) {
      for (const auto& kv : n) {
        if (!kv.second.IsScalar()) fail(kv.second, key + "." + kv.first.as<std::string>(), "must be one value");
        out.push_back(kv.first.as<std::string>() + "=" + kv.second.as<std::string>());
      }
    } else if (n.IsSequence()) {
      for (const auto& x : n) {
        const auto s = text(x, key);
        if (s.find('=') == std::string::npos) fail(x, key, "'" + s + "' is not key=value");
        out.push_back(s);
      }
    } else {
      fail(n, key, "must be a mapping of keys to values");
    }
    for (const auto& s : out)
      if (s.rfind("seed=", 0) == 0 || s.rfind("output_dir=", 0) == 0)
        fail(n, key, "seed and output_dir are the study's (seeds:, --out)");
    return out;
  }
};

// `prepare:` (see study.h).
Prepare read_prepare(const Reader& r, const YAML::Node& n) {
  r.only_keys(n, "prepare", {"data", "encoder"});
  Prepare p;
  if (const auto d = n["data"]) {
    r.only_keys(d, "prepare.data", {"root", "synth", "llara", "tags"});
    int kinds = 0;
    for (const char* k : {"root", "synth", "llara"})
      if (d[k]) ++kinds, p.data_kind = k;
    if (kinds != 1) r.fail(d, "prepare.data", "must name one of root, synth, llara");
    if (d["tags"]) {
      if (p.data_kind != "llara") r.fail(d["tags"], "prepare.data.tags", "only with llara: (LastFM's HetRec tags as genres)");
      p.data_tags = r.path(d["tags"], "prepare.data.tags");
    }
    if (p.data_kind == "synth") {
      const auto a = d["synth"];
      if (!a.IsMap()) r.fail(a, "prepare.data.synth", "must be a mapping of sbtrec-data synth's options, e.g. {titles: random}");
      for (const auto& kv : a) {
        const auto k = kv.first.as<std::string>();
        if (k == "out") r.fail(kv.first, "prepare.data.synth.out", "the study chooses the output (DIR/prepared/data)");
        p.synth_args.push_back("--" + k);
        p.synth_args.push_back(r.text(kv.second, "prepare.data.synth." + k));
      }
    } else {
      p.data_path = r.path(d[p.data_kind], "prepare.data." + p.data_kind);
    }
  }
  if (const auto e = n["encoder"]) {
    r.only_keys(e, "prepare.encoder", {"checkpoint", "import", "train", "set"});
    int kinds = 0;
    for (const char* k : {"checkpoint", "import", "train"})
      if (e[k]) ++kinds, p.encoder_kind = k;
    if (kinds != 1) r.fail(e, "prepare.encoder", "must name one of checkpoint, import, train");
    p.encoder_path = r.path(e[p.encoder_kind], "prepare.encoder." + p.encoder_kind);
    if (e["set"] && p.encoder_kind != "train") r.fail(e["set"], "prepare.encoder.set", "only with train:");
    p.encoder_sets = r.sets(e["set"], "prepare.encoder.set");
  }
  return p;
}

}  // namespace

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::kNew: return "new";
    case RunStatus::kInterrupted: return "interrupted";
    case RunStatus::kTrained: return "trained";
    case RunStatus::kDone: return "done";
  }
  return "?";
}

Study load_study(const std::string& path) {
  if (!fs::exists(path)) throw ConfigError(path + ": no such study file");
  Reader r{fs::absolute(path).lexically_normal().string()};
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(r.file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  r.only_keys(root, "", {"name", "base", "set", "seeds", "reference", "variants", "passes", "prepare"});
  Study s;
  s.file = r.file;
  s.name = root["name"] ? r.text(root["name"], "name") : fs::path(path).stem().string();
  const std::string base = r.path(root["base"], "base");
  const auto common = r.sets(root["set"], "set");
  const auto seeds = root["seeds"];
  if (!seeds || !seeds.IsSequence() || seeds.size() == 0) r.fail(seeds, "seeds", "must be a non-empty list of integers");
  for (const auto& x : seeds) {
    try {
      const auto k = x.as<std::uint64_t>();
      if (std::count(s.seeds.begin(), s.seeds.end(), k)) r.fail(x, "seeds", "seed " + std::to_string(k) + " twice");
      s.seeds.push_back(k);
    } catch (const YAML::Exception&) {
      r.fail(x, "seeds", "'" + x.as<std::string>() + "' is not a non-negative integer");
    }
  }
  const auto variants = root["variants"];
  if (!variants || !variants.IsSequence() || variants.size() == 0)
    r.fail(variants, "variants", "must be a non-empty list of {name, base, set}");
  for (const auto& v : variants) {
    r.only_keys(v, "variants[]", {"name", "base", "set"});
    Variant x;
    x.name = r.text(v["name"], "variants[].name");
    if (x.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
      r.fail(v["name"], "variants[].name", "'" + x.name + "': use a-z, 0-9, _ and - (it names a directory)");
    for (const auto& y : s.variants)
      if (y.name == x.name) r.fail(v["name"], "variants[].name", "'" + x.name + "' twice");
    x.base = v["base"] ? r.path(v["base"], "variants[" + x.name + "].base") : base;
    x.sets = common;
    x.study_sets = common.size();
    for (const auto& kv : r.sets(v["set"], "variants[" + x.name + "].set")) x.sets.push_back(kv);
    s.variants.push_back(x);
  }
  s.reference = r.text(root["reference"], "reference");
  if (std::none_of(s.variants.begin(), s.variants.end(), [&](const Variant& v) { return v.name == s.reference; }))
    r.fail(root["reference"], "reference", "'" + s.reference + "' is not one of the variants");
  const auto passes = root["passes"];
  if (!passes || !passes.IsSequence() || passes.size() == 0)
    r.fail(passes, "passes", "must be a non-empty list of {split, evaluator}");
  const auto evaluators = eval::evaluator_names();
  for (const auto& p : passes) {
    r.only_keys(p, "passes[]", {"split", "evaluator", "noise"});
    Pass x{r.text(p["split"], "passes[].split"), r.text(p["evaluator"], "passes[].evaluator"), {}};
    if (const auto n = p["noise"]) {
      r.only_keys(n, "passes[].noise", {"kind", "count", "position", "seed"});
      if (!n["kind"]) r.fail(n, "passes[].noise.kind", "missing (random or off_genre)");
      for (const char* k : {"kind", "count", "position", "seed"})
        if (n[k]) x.noise.push_back(std::string(k) + "=" + r.text(n[k], std::string("passes[].noise.") + k));
      data::NoiseOptions o;
      try {  // the values as eval.noise reads them
        std::vector<std::string> sets;
        for (const auto& kv : x.noise) sets.push_back("eval.noise." + kv);
        o = parse_config("{}", r.file, sets).eval.noise;
      } catch (const ConfigError& e) {
        r.fail(n, "passes[].noise", e.what());
      }
      if (!o.enabled()) r.fail(n["kind"], "passes[].noise.kind", "off: leave noise out for a clean pass");
    }
    if (x.split != "val" && x.split != "test") r.fail(p["split"], "passes[].split", "'" + x.split + "': val or test");
    if (std::find(evaluators.begin(), evaluators.end(), x.evaluator) == evaluators.end()) {
      std::string list;
      for (const auto& e : evaluators) list += (list.empty() ? "" : ", ") + e;
      r.fail(p["evaluator"], "passes[].evaluator", "'" + x.evaluator + "' is not an evaluator (" + list + ")");
    }
    for (const auto& y : s.passes)
      if (y.name() == x.name()) r.fail(p, "passes[]", x.name() + " twice");
    s.passes.push_back(x);
  }
  if (root["prepare"]) s.prepare = read_prepare(r, root["prepare"]);
  return s;
}

std::string Pass::name() const {
  std::string s = split + "_" + evaluator;
  if (noise.empty()) return s;
  std::map<std::string, std::string> v;
  for (const auto& kv : noise) v[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  s += "_noise_" + v["kind"] + "_" + (v.count("count") ? v["count"] : "1") + "_" + (v.count("position") ? v["position"] : "end");
  return v.count("seed") ? s + "_seed" + v["seed"] : s;
}

std::string prepared_dir(const std::string& out) { return (fs::absolute(out) / "prepared").lexically_normal().string(); }

std::string prepared_data_root(const Study& study, const std::string& out) {
  const auto& p = study.prepare;
  if (p.data_kind == "root") return p.data_path;
  return p.data_kind.empty() ? "" : prepared_dir(out) + "/data";
}

std::string prepared_encoder(const Study& study, const std::string& out) {
  const auto& p = study.prepare;
  if (p.encoder_kind == "checkpoint") return p.encoder_path;
  return p.encoder_kind.empty() ? "" : prepared_dir(out) + "/encoder";
}

std::vector<PlannedRun> plan_runs(const Study& study, const std::string& out, const std::string& only) {
  if (!only.empty() && std::none_of(study.variants.begin(), study.variants.end(),
                                    [&](const Variant& v) { return v.name == only; }))
    throw ConfigError("--only " + only + ": " + study.file + " has no such variant");
  // Each variant's recipe (its base and own keys name it), and which of the study's keys it reads.
  auto key_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  // "key=@name": variant `name`'s run of seed k (an earlier variant, so it runs first), added to *after.
  auto resolve = [&](std::string kv, size_t vi, std::uint64_t k, std::vector<std::string>* after) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || kv.compare(eq + 1, 1, "@") != 0) return kv;
    const std::string name = kv.substr(eq + 2);
    const auto end = study.variants.begin() + (ptrdiff_t)vi;
    if (std::none_of(study.variants.begin(), end, [&](const Variant& w) { return w.name == name; }))
      throw ConfigError(study.file + ": variant " + study.variants[vi].name + " sets " + kv.substr(0, eq) + ": @" + name +
                        " must name a variant listed before it (its run of the same seed is used)");
    const auto dir = (fs::absolute(out) / name / ("seed" + std::to_string(k))).lexically_normal().string();
    if (after) after->push_back(dir);
    return kv.substr(0, eq + 1) + dir;
  };
  std::vector<std::string> recipes;
  for (size_t vi = 0; vi < study.variants.size(); ++vi) {
    const auto& v = study.variants[vi];
    std::vector<std::string> own;
    for (size_t i = v.study_sets; i < v.sets.size(); ++i) own.push_back(resolve(v.sets[i], vi, study.seeds.front(), nullptr));
    recipes.push_back(load_config(v.base, own).recipe);
  }
  const auto& first = study.variants.front();  // every variant starts with the same study keys
  for (size_t i = 0; i < first.study_sets; ++i)
    if (std::none_of(recipes.begin(), recipes.end(),
                     [&](const std::string& r) { return train::recipe_reads(r, key_of(first.sets[i])); }))
      throw ConfigError(study.file + ": set: " + key_of(first.sets[i]) + " is read by none of the variants' recipes");
  std::vector<PlannedRun> runs;
  for (size_t vi = 0; vi < study.variants.size(); ++vi) {
    const auto& v = study.variants[vi];
    const auto& recipe = recipes[vi];
    if (!only.empty() && v.name != only) continue;
    std::vector<std::string> sets;  // the study's keys this variant's recipe reads, then its own
    for (size_t i = 0; i < v.sets.size(); ++i)
      if (i >= v.study_sets || train::recipe_reads(recipe, key_of(v.sets[i]))) sets.push_back(v.sets[i]);
    const bool encoder_run = recipe == "encoder";
    for (const auto k : study.seeds) {
      PlannedRun r{v.name, k, (fs::absolute(out) / v.name / ("seed" + std::to_string(k))).lexically_normal().string(),
                   v.base, {}};
      if (const auto root = prepared_data_root(study, out); !root.empty()) r.sets.push_back("data.root=" + root);
      // The prepared encoder is what an SBT-Rec run reads; an encoder run (a baseline row) trains its own.
      if (const auto enc = prepared_encoder(study, out); !enc.empty() && !encoder_run)
        r.sets.push_back("encoder.checkpoint=" + enc);
      for (const auto& kv : sets) r.sets.push_back(resolve(kv, vi, k, &r.after));
      r.sets.push_back("seed=" + std::to_string(k));
      r.sets.push_back("output_dir=" + r.dir);
      runs.push_back(r);
    }
  }
  return runs;
}

RunStatus run_status(const PlannedRun& run, const Study& study) {
  const fs::path d = run.dir;
  if (fs::exists(d / "results.json")) {
    for (const auto& p : study.passes)
      if (!fs::exists(d / p.predictions())) return RunStatus::kTrained;
    return RunStatus::kDone;
  }
  return fs::exists(d / "state/state.json") ? RunStatus::kInterrupted : RunStatus::kNew;
}

std::string hdsd_prep_dir(const PlannedRun& run, const std::string& out) {
  const Config cfg = load_config(run.base, run.sets);
  if (cfg.recipe == "encoder" || !cfg.quantizer.enabled || !cfg.quantizer.codebooks.empty()) return "";
  YAML::Node q = YAML::Load(config_to_yaml(cfg))["quantizer"];
  q.remove("codebooks");
  const std::string what = YAML::Dump(q) + "\ndata.root=" + cfg.data.root + "\nencoder.checkpoint=" +
                           cfg.encoder.checkpoint + "\nkmeans_seed=" +
                           std::to_string(quantizer::kmeans_seed(cfg.quantizer, cfg.seed)) +
                           "\neval.batch_size=" + std::to_string(cfg.eval.batch_size);
  return prepared_dir(out) + "/hdsd-" + sha256_hex(what).substr(0, 12);
}

nlohmann::json study_json(const Study& study) {
  nlohmann::json j = {{"name", study.name}, {"file", study.file}, {"reference", study.reference},
                      {"seeds", study.seeds}};
  j["variants"] = nlohmann::json::array();
  for (const auto& v : study.variants) j["variants"].push_back(v.name);
  j["passes"] = nlohmann::json::array();
  for (const auto& p : study.passes) {
    nlohmann::json x = {{"name", p.name()}, {"split", p.split}, {"evaluator", p.evaluator}, {"predictions", p.predictions()}};
    if (!p.noise.empty()) {
      x["noise"] = nlohmann::json::object();
      for (const auto& kv : p.noise) {
        const auto k = kv.substr(0, kv.find('=')), v = kv.substr(kv.find('=') + 1);
        x["noise"][k] = k == "count" || k == "seed" ? nlohmann::json(std::stoll(v)) : nlohmann::json(v);
      }
    }
    j["passes"].push_back(x);
  }
  return j;
}

std::vector<size_t> run_jobs(size_t count, int parallel, const std::function<int(size_t, int)>& job) {
  parallel = std::max(1, parallel);
  std::mutex m;
  std::condition_variable cv;
  std::vector<bool> busy((size_t)parallel, false);
  std::vector<size_t> failed;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < count; ++i) {
    int slot = -1;
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return !failed.empty() || std::find(busy.begin(), busy.end(), false) != busy.end(); });
      if (!failed.empty()) break;
      slot = (int)(std::find(busy.begin(), busy.end(), false) - busy.begin());
      busy[(size_t)slot] = true;
    }
    threads.emplace_back([&, i, slot] {
      int rc = 1;
      try {
        rc = job(i, slot);
      } catch (...) {
        rc = 1;
      }
      std::lock_guard<std::mutex> lock(m);
      if (rc != 0) failed.push_back(i);
      busy[(size_t)slot] = false;
      cv.notify_all();
    });
  }
  for (auto& t : threads) t.join();
  std::sort(failed.begin(), failed.end());
  return failed;
}

}  // namespace sbtrec::study
