// sbtrec-study: a study's variants x seeds as ordinary runs (study/study.h), then its report.
//   sbtrec-study run STUDY.yaml --out DIR [--only VARIANT] [--seed K] [--jobs N] [--dry-run]
//   sbtrec-study report DIR
//   sbtrec-study cases DIR [--seed K] [--max N]
// `run` trains each variant x seed with sbtrec-train into DIR/<variant>/seed<k>/ and evaluates it with
// sbtrec-eval for each pass. Finished runs and passes are skipped; an interrupted run (state/ saved,
// e.g. after --stop-after or a kill) continues exactly with sbtrec-train --resume. `report` runs
// scripts/study_report.py (scipy) on DIR: results.md, results.csv, results.json, figures/; `cases` runs
// scripts/study_cases.py: cases.md, cases.json (the paper's Table 2 from the runs' outputs).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cli_common.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/process.h"
#include "sbtrec/common/progress.h"
#include "sbtrec/study/study.h"

using namespace sbtrec;
namespace fs = std::filesystem;

namespace {

// The directory of this program: sbtrec-train and sbtrec-eval are its siblings.
std::string program_dir() { return fs::path(self_path()).parent_path().string(); }

// Runs a program (no shell) with this process's environment plus `env`, its output going to ours;
// returns its exit status.
int spawn(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  return wait_process(start_process(args, env));
}

std::string command_line(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string python() {
  const char* py = std::getenv("SBTREC_PYTHON");
  const std::string path = py && *py ? py : SBTREC_STUDY_PYTHON;
  if (!path_exists(path)) throw ConfigError("no Python at " + path + " (run ./scripts/setup.sh, or set SBTREC_PYTHON)");
  return path;
}
std::string script(const std::string& name) { return std::string(SBTREC_STUDY_SCRIPTS) + "/" + name; }

// One step of the preparation: `make(tmp)` writes into `dir`.tmp, which becomes `dir` when it succeeds
// (nothing half-made is ever taken for done); skipped when `dir` exists. A training run (`in_place`)
// writes into `dir` itself and is done when its results.json exists; an unfinished one starts over.
void prepare_step(const std::string& what, const std::string& dir, bool dry_run,
                  const std::function<std::vector<std::string>(const std::string& target)>& make, bool in_place = false) {
  const bool ready = path_exists(in_place ? dir + "/results.json" : dir);
  std::printf("  prepare %-44s %s  %s\n", what.c_str(), ready ? "ready" : "to do", dir.c_str());
  if (ready || dry_run) return;
  const std::string target = in_place ? dir : dir + ".tmp";
  if (!in_place) fs::remove_all(target);
  fs::create_directories(fs::path(target).parent_path());
  const auto cmd = make(target);
  spdlog::info("[study] preparing {}: {}", what, command_line(cmd));
  if (spawn(cmd) != 0) throw Error("preparing " + what + " failed: " + command_line(cmd));
  if (!in_place) fs::rename(target, dir);
}

// DIR/prepared/ (study.h): the data, the encoder, then the HDSD fits of the runs still to train;
// returns each run's codebooks directory ("" where it fits none), by the runs' indices.
std::vector<std::string> prepare(const study::Study& s, const std::string& out, const std::vector<study::PlannedRun>& runs,
                                 const std::vector<study::RunStatus>& status, const std::string& bin, bool dry_run) {
  const auto& p = s.prepare;
  const std::string root = study::prepared_data_root(s, out), encoder = study::prepared_encoder(s, out);
  if (p.data_kind == "synth")
    prepare_step("data: sbtrec-data synth", root, dry_run, [&](const std::string& tmp) {
      std::vector<std::string> cmd = {bin + "/sbtrec-data", "synth"};
      cmd.insert(cmd.end(), p.synth_args.begin(), p.synth_args.end());
      cmd.insert(cmd.end(), {"--out", tmp});
      return cmd;
    });
  if (p.data_kind == "llara")
    prepare_step("data: LLaRA's splits imported", root, dry_run, [&](const std::string& tmp) {
      std::vector<std::string> cmd = {python(), script("import_llara_data.py"), "--src", p.data_path, "--out", tmp};
      if (!p.data_tags.empty()) cmd.insert(cmd.end(), {"--tags", p.data_tags});
      return cmd;
    });
  if (p.encoder_kind == "import")
    prepare_step("encoder: LLaRA's checkpoint imported", encoder, dry_run, [&](const std::string& tmp) {
      return std::vector<std::string>{python(), script("import_llara_checkpoint.py"), "--checkpoint", p.encoder_path,
                                      "--out", tmp};
    });
  if (p.encoder_kind == "train")
    prepare_step("encoder: sbtrec-train", encoder, dry_run, [&](const std::string& target) {
      std::vector<std::string> cmd = {bin + "/sbtrec-train", "--config", p.encoder_path, "--overwrite"};
      if (!root.empty()) cmd.insert(cmd.end(), {"--set", "data.root=" + root});
      for (const auto& kv : p.encoder_sets) cmd.insert(cmd.end(), {"--set", kv});
      cmd.insert(cmd.end(), {"--set", "output_dir=" + target});
      return cmd;
    }, /*in_place=*/true);
  // One fit per distinct directory, however many runs share it.
  std::vector<std::string> codebooks(runs.size());
  std::map<std::string, std::vector<size_t>> users;  // fit directory -> runs
  for (size_t i = 0; i < runs.size(); ++i) {
    if (status[i] != study::RunStatus::kNew) continue;  // trained or resuming: its codebooks are in its checkpoint
    codebooks[i] = study::hdsd_prep_dir(runs[i], out);
    if (!codebooks[i].empty()) users[codebooks[i]].push_back(i);
  }
  for (const auto& [dir, which] : users) {
    const auto& r = runs[which.front()];
    prepare_step("HDSD fit: " + r.variant + "/seed" + std::to_string(r.seed) +
                     (which.size() > 1 ? " and " + std::to_string(which.size() - 1) + " more" : ""),
                 dir, dry_run, [&](const std::string& tmp) {
                   std::vector<std::string> cmd = {bin + "/sbtrec-quantize", "--config", r.base};
                   for (const auto& kv : r.sets) cmd.insert(cmd.end(), {"--set", kv});
                   cmd.insert(cmd.end(), {"--encoder", load_config(r.base, r.sets).encoder.checkpoint, "--out", tmp,
                                          "--overwrite"});
                   return cmd;
                 });
  }
  return codebooks;
}

// Seconds that finished runs of this study took (results.json "seconds"), for the estimate.
std::vector<double> finished_seconds(const std::vector<study::PlannedRun>& runs) {
  std::vector<double> out;
  for (const auto& r : runs) {
    const auto p = r.dir + "/results.json";
    if (!path_exists(p)) continue;
    const auto j = nlohmann::json::parse(read_file(p), nullptr, false);
    if (j.is_object() && j.contains("seconds") && j["seconds"].is_number()) out.push_back(j["seconds"].get<double>());
  }
  return out;
}

int run_study(const std::string& file, const std::string& out, const std::string& only, int64_t seed, bool dry_run,
              int jobs) {
  const auto s = study::load_study(file);
  auto runs = study::plan_runs(s, out, only);
  if (seed >= 0) {  // --seed K: that seed's runs only (e.g. one seed of every variant first)
    if (std::find(s.seeds.begin(), s.seeds.end(), (std::uint64_t)seed) == s.seeds.end())
      throw ConfigError("--seed " + std::to_string(seed) + ": " + s.file + " has no such seed");
    runs.erase(std::remove_if(runs.begin(), runs.end(),
                              [&](const study::PlannedRun& r) { return r.seed != (std::uint64_t)seed; }),
               runs.end());
  }
  const auto took = finished_seconds(runs);
  double mean = 0;
  for (double t : took) mean += t / took.size();
  std::vector<study::RunStatus> status;  // each run's state, read once
  for (const auto& r : runs) status.push_back(study::run_status(r, s));
  const size_t todo =
      (size_t)std::count_if(status.begin(), status.end(), [](study::RunStatus x) { return x != study::RunStatus::kDone; });
  const size_t seeds = seed >= 0 ? 1 : s.seeds.size();
  std::printf("study %s: %zu variants x %zu seeds = %zu runs (%zu to do), %zu passes each; reference %s\n",
              s.name.c_str(), runs.size() / seeds, seeds, runs.size(), todo, s.passes.size(), s.reference.c_str());
  const double lanes = (double)std::max<size_t>(1, std::min<size_t>((size_t)jobs, todo));
  std::printf("estimate: %s\n", took.empty() ? "none yet (no finished run to time)"
                                             : (format_duration(mean * todo / lanes) + " (" + std::to_string(todo) +
                                                " runs at the " + format_duration(mean) + " of finished ones, " +
                                                std::to_string(jobs) + " at once)")
                                                   .c_str());
  const std::string bin = program_dir();
  // Each job gets its share of this process's cores (unless OMP_NUM_THREADS says), and its own GPU
  // where there are as many as jobs.
  const int threads = std::max(1, at::get_num_threads() / std::max(1, jobs));
  const int gpus = torch::cuda::is_available() ? (int)torch::cuda::device_count() : 0;
  record_threads(0);  // this process only waits; its preparation and runs take the cores (common/core_share.h)
  if (!dry_run) fs::create_directories(out);
  const auto codebooks = prepare(s, out, runs, status, bin, dry_run);
  if (dry_run) {
    for (size_t i = 0; i < runs.size(); ++i)
      std::printf("  %-12s %s/seed%llu  %s\n", study::to_string(status[i]), runs[i].variant.c_str(),
                  (unsigned long long)runs[i].seed, runs[i].dir.c_str());
    return 0;
  }
  atomic_write_string(out + "/study.json", study::study_json(s).dump(2) + "\n");
  std::vector<size_t> pending;
  for (size_t i = 0; i < runs.size(); ++i)
    if (status[i] != study::RunStatus::kDone) pending.push_back(i);
  // Seed by seed (every variant of the first seed first): a study stopped part-way has paired runs.
  std::stable_sort(pending.begin(), pending.end(), [&](size_t a, size_t b) {
    return std::find(s.seeds.begin(), s.seeds.end(), runs[a].seed) < std::find(s.seeds.begin(), s.seeds.end(), runs[b].seed);
  });
  // A run that starts from another's (key=@variant) needs that one finished: one job at a time keeps the
  // order (seed by seed, variants as listed); a run whose start is missing (--only) is refused first.
  for (size_t i : pending)
    for (const auto& dep : runs[i].after) {
      const bool queued = std::any_of(pending.begin(), pending.end(), [&](size_t j) { return runs[j].dir == dep; });
      if (!queued && !path_exists(dep + "/results.json"))
        throw ConfigError(runs[i].variant + "/seed" + std::to_string(runs[i].seed) + " starts from " + dep +
                          ", which is not trained; run that variant first (without --only)");
      if (queued && jobs > 1)
        throw ConfigError(s.file + ": variant " + runs[i].variant + " starts from another variant's run; run it with --jobs 1");
    }
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> finished{0};
  const auto failed = study::run_jobs(pending.size(), jobs, [&](size_t j, int slot) {
    const auto& r = runs[pending[j]];
    const auto state = status[pending[j]];
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t f = finished.load();  // runs finish at f / elapsed, however many run at once
    const std::string eta = f ? format_duration(elapsed / (double)f * (double)(pending.size() - f)) : "unknown";
    spdlog::info("[study {}] run {} of {}: {}/seed{} ({}); ETA {}", s.name, runs.size() - pending.size() + j + 1, runs.size(), r.variant,
                 r.seed, study::to_string(state), eta);
    std::vector<std::string> env;
    if (!std::getenv("OMP_NUM_THREADS")) env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
    if (gpus >= jobs && jobs > 1) env.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(slot));
    std::vector<std::string> cmd;
    if (state == study::RunStatus::kInterrupted) {
      cmd = {bin + "/sbtrec-train", "--config", r.dir + "/config.yaml", "--resume", r.dir};
    } else if (state == study::RunStatus::kNew) {
      cmd = {bin + "/sbtrec-train", "--config", r.base, "--overwrite"};
      for (const auto& kv : r.sets) cmd.insert(cmd.end(), {"--set", kv});
      if (!codebooks[pending[j]].empty()) cmd.insert(cmd.end(), {"--set", "quantizer.codebooks=" + codebooks[pending[j]]});
    }
    if (!cmd.empty() && spawn(cmd, env) != 0) {
      spdlog::error("run {}/seed{} failed: {}", r.variant, r.seed, command_line(cmd));
      return 1;
    }
    const auto trained = load_config(r.dir + "/config.yaml");
    for (const auto& p : s.passes) {
      const std::string to = r.dir + "/" + p.predictions();
      if (path_exists(to)) continue;
      // Training's own test evaluation (predictions.jsonl: the same checkpoint, cases and evaluator).
      if (p.split == "test" && p.evaluator == trained.eval.mode && p.noise.empty() &&
          path_exists(r.dir + "/predictions.jsonl")) {
        fs::copy_file(r.dir + "/predictions.jsonl", to + ".tmp", fs::copy_options::overwrite_existing);
        fs::rename(to + ".tmp", to);
        continue;
      }
      cmd = {bin + "/sbtrec-eval", "--config", r.dir + "/config.yaml", "--checkpoint", r.dir, "--split", p.split,
             "--set", "eval.mode=" + p.evaluator, "--predictions", to};
      for (const auto& kv : p.noise) cmd.insert(cmd.end(), {"--set", "eval.noise." + kv});
      if (spawn(cmd, env) != 0) {
        spdlog::error("pass {} of {}/seed{} failed: {}", p.name(), r.variant, r.seed, command_line(cmd));
        return 1;
      }
    }
    ++finished;
    return 0;
  });
  if (!failed.empty())
    throw Error(std::to_string(failed.size()) + " run(s) of the study failed (above); run the study again to continue");
  spdlog::info("[study {}] {} runs done; report: sbtrec-study report {}", s.name, runs.size(), out);
  return 0;
}

int report(const std::string& dir) { return spawn({python(), script("study_report.py"), dir}); }

int cases(const std::string& dir, int seed, int max) {
  std::vector<std::string> cmd = {python(), script("study_cases.py"), dir, "--max", std::to_string(max)};
  if (seed >= 0) cmd.insert(cmd.end(), {"--seed", std::to_string(seed)});
  return spawn(cmd);
}

}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-study: a study's variants x seeds as runs, then its report"};
  app.require_subcommand(1);
  std::string file, out, only, dir;
  bool dry_run = false;
  int jobs = 1;
  auto* run = app.add_subcommand("run", "Train and evaluate every variant x seed of STUDY.yaml into --out DIR");
  run->add_option("study", file, "The study file")->required();
  run->add_option("--out", out, "The study directory")->required();
  run->add_option("--only", only, "Run this variant only");
  int64_t run_seed = -1;
  run->add_option("--seed", run_seed, "Run this seed's runs only (one of the study's seeds)");
  run->add_flag("--dry-run", dry_run, "List the runs, their state and an estimate of the time, and exit");
  run->add_option("--jobs", jobs, "Runs at once: each gets 1/N of this process's cores (and its own GPU where there "
                  "are N)")->check(CLI::PositiveNumber);
  auto* rep = app.add_subcommand("report", "Write DIR/results.md, results.csv and results.json (scipy)");
  rep->add_option("dir", dir, "The study directory")->required();
  int seed = -1, max_cases = 10;
  auto* cas = app.add_subcommand("cases", "Write DIR/cases.md and cases.json: the test cases where the variants "
                                 "disagree, clean and noisy, with history titles, genres, outputs and the target");
  cas->add_option("dir", dir, "The study directory")->required();
  cas->add_option("--seed", seed, "The seed whose runs are shown (default: the study's first)");
  cas->add_option("--max", max_cases, "Cases shown per pass")->check(CLI::PositiveNumber);
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    if (run->parsed()) return run_study(file, out, only, run_seed, dry_run, jobs);
    return cas->parsed() ? cases(dir, seed, max_cases) : report(dir);
  });
}
