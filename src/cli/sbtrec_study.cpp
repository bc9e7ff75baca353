// sbtrec-study: a study's variants x seeds as ordinary runs (study/study.h), then its report.
//   sbtrec-study run STUDY.yaml --out DIR [--only VARIANT] [--dry-run]
//   sbtrec-study report DIR
// `run` trains each variant x seed with sbtrec-train into DIR/<variant>/seed<k>/ and evaluates it with
// sbtrec-eval for each pass. Finished runs and passes are skipped; an interrupted run (state/ saved,
// e.g. after --stop-after or a kill) continues exactly with sbtrec-train --resume. `report` runs
// scripts/study_report.py (scipy) on DIR: results.md, results.csv, results.json.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli_common.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/progress.h"
#include "sbtrec/study/study.h"

using namespace sbtrec;
namespace fs = std::filesystem;

namespace {

// The directory of this program: sbtrec-train and sbtrec-eval are its siblings.
std::string program_dir() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) throw IoError("cannot find this program's path (/proc/self/exe)");
  exe[n] = '\0';
  return fs::path(exe).parent_path().string();
}

// Runs a program with its arguments (no shell) and this process's environment plus `env`
// ("KEY=value", replacing a variable of the same name), its output going to ours; returns its exit
// status. posix_spawn: safe from the study's job threads.
int spawn(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto key = kv.substr(0, kv.find('=') + 1);
    if (std::none_of(env.begin(), env.end(), [&](const std::string& x) { return x.rfind(key, 0) == 0; }))
      envp.push_back(*e);
  }
  for (const auto& kv : env) envp.push_back(const_cast<char*>(kv.c_str()));
  envp.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = 0;
  if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()) != 0)
    throw IoError("cannot start " + args[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string command_line(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
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

int run_study(const std::string& file, const std::string& out, const std::string& only, bool dry_run, int jobs) {
  const auto s = study::load_study(file);
  const auto runs = study::plan_runs(s, out, only);
  const auto took = finished_seconds(runs);
  double mean = 0;
  for (double t : took) mean += t / took.size();
  size_t todo = 0;
  for (const auto& r : runs) todo += study::run_status(r, s) != study::RunStatus::kDone;
  std::printf("study %s: %zu variants x %zu seeds = %zu runs (%zu to do), %zu passes each; reference %s\n",
              s.name.c_str(), runs.size() / s.seeds.size(), s.seeds.size(), runs.size(), todo, s.passes.size(),
              s.reference.c_str());
  const double lanes = (double)std::max<size_t>(1, std::min<size_t>((size_t)jobs, todo));
  std::printf("estimate: %s\n", took.empty() ? "none yet (no finished run to time)"
                                             : (format_duration(mean * todo / lanes) + " (" + std::to_string(todo) +
                                                " runs at the " + format_duration(mean) + " of finished ones, " +
                                                std::to_string(jobs) + " at once)")
                                                   .c_str());
  if (dry_run) {
    for (const auto& r : runs)
      std::printf("  %-12s %s/seed%llu  %s\n", study::to_string(study::run_status(r, s)), r.variant.c_str(),
                  (unsigned long long)r.seed, r.dir.c_str());
    return 0;
  }
  fs::create_directories(out);
  atomic_write_string(out + "/study.json", study::study_json(s).dump(2) + "\n");
  const std::string bin = program_dir();
  std::vector<size_t> pending;
  for (size_t i = 0; i < runs.size(); ++i)
    if (study::run_status(runs[i], s) != study::RunStatus::kDone) pending.push_back(i);
  // Each job gets its share of this process's cores (unless OMP_NUM_THREADS says), and its own GPU
  // where there are as many as jobs.
  const int threads = std::max(1, at::get_num_threads() / std::max(1, jobs));
  const int gpus = torch::cuda::is_available() ? (int)torch::cuda::device_count() : 0;
  record_threads(0);  // this process only waits; its runs take the cores (common/core_share.h)
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> finished{0};
  const auto failed = study::run_jobs(pending.size(), jobs, [&](size_t j, int slot) {
    const auto& r = runs[pending[j]];
    const auto status = study::run_status(r, s);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const size_t f = finished.load();  // runs finish at f / elapsed, however many run at once
    const std::string eta = f ? format_duration(elapsed / (double)f * (double)(pending.size() - f)) : "unknown";
    spdlog::info("[study {}] run {} of {}: {}/seed{} ({}); ETA {}", s.name, pending[j] + 1, runs.size(), r.variant,
                 r.seed, study::to_string(status), eta);
    std::vector<std::string> env;
    if (!std::getenv("OMP_NUM_THREADS")) env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
    if (gpus >= jobs && jobs > 1) env.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(slot));
    std::vector<std::string> cmd;
    if (status == study::RunStatus::kInterrupted) {
      cmd = {bin + "/sbtrec-train", "--config", r.dir + "/config.yaml", "--resume", r.dir};
    } else if (status == study::RunStatus::kNew) {
      cmd = {bin + "/sbtrec-train", "--config", r.base, "--overwrite"};
      for (const auto& kv : r.sets) cmd.insert(cmd.end(), {"--set", kv});
    }
    if (!cmd.empty() && spawn(cmd, env) != 0) {
      spdlog::error("run {}/seed{} failed: {}", r.variant, r.seed, command_line(cmd));
      return 1;
    }
    for (const auto& p : s.passes) {
      if (path_exists(r.dir + "/" + p.predictions())) continue;
      cmd = {bin + "/sbtrec-eval", "--config", r.dir + "/config.yaml", "--checkpoint", r.dir, "--split", p.split,
             "--set", "eval.mode=" + p.evaluator, "--predictions", r.dir + "/" + p.predictions()};
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

int report(const std::string& dir) {
  const char* py = std::getenv("SBTREC_PYTHON");
  const std::string python = py && *py ? py : SBTREC_STUDY_PYTHON;
  const std::string script = std::string(SBTREC_STUDY_SCRIPTS) + "/study_report.py";
  if (!path_exists(python)) throw ConfigError("no Python at " + python + " (run ./scripts/setup.sh, or set SBTREC_PYTHON)");
  return spawn({python, script, dir});
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
  run->add_flag("--dry-run", dry_run, "List the runs, their state and an estimate of the time, and exit");
  run->add_option("--jobs", jobs, "Runs at once: each gets 1/N of this process's cores (and its own GPU where there "
                  "are N)")->check(CLI::PositiveNumber);
  auto* rep = app.add_subcommand("report", "Write DIR/results.md, results.csv and results.json (scipy)");
  rep->add_option("dir", dir, "The study directory")->required();
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() { return run->parsed() ? run_study(file, out, only, dry_run, jobs) : report(dir); });
}
