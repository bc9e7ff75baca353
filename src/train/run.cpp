// Run lifecycle (see run.h).
#include "sbtrec/train/run.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "sbtrec/common/core_share.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

#include <filesystem>
#include <random>

#include <fmt/format.h>

namespace sbtrec::train {

namespace {
// Everything a run writes into its directory (sbtrec-eval's predictions_<split>_<mode>.jsonl are
// matched by prefix): --overwrite removes exactly these, and leaves a user's other files alone.
const char* const kRunFiles[] = {"config.yaml", "metrics.jsonl", "results.json", "checkpoint", "metrics.png",
                                 "run.json",    "state",         "predictions.jsonl"};
bool written_by_a_run(const std::string& name) {
  for (const char* f : kRunFiles)
    if (name == f) return true;
  return name.rfind("predictions_", 0) == 0 && name.size() > 18 && name.compare(name.size() - 6, 6, ".jsonl") == 0;
}
// A fresh run's identity (run.json), recorded in its training state so --resume can tell its own
// state/ from one left by another run.
std::string new_run_id() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}
}  // namespace

Run::Run(const Config& c, bool overwrite) : Run(c, overwrite, /*check_dir=*/true) {}

Run::Run(const Config& c, bool overwrite, bool check_dir)
    : dir_(c.output_dir),
      config_yaml_(config_to_yaml(c, c.output_dir)),
      run_id_(new_run_id()),
      overwrite_(overwrite),
      epochs_(c.train.epochs),
      eval_every_(c.train.eval_every),
      patience_(c.train.patience),
      log_every_(c.train.log_every),
      monitor_(c.train.monitor),
      t0_(std::chrono::steady_clock::now()) {
  if (!check_dir) return;
  if (path_exists(dir_) && !std::filesystem::is_directory(dir_))
    throw ConfigError("config key 'output_dir': '" + dir_ + "' is a file, not a directory; choose another --set output_dir=...");
  if (nonempty_dir(dir_) && !overwrite_)
    throw ConfigError("config key 'output_dir': '" + dir_ + "' is not empty (a previous run?). Pass --overwrite to replace "
                      "its run files, or choose another --set output_dir=...");
}

Run Run::resuming(const Config& c) {
  if (!path_exists(c.output_dir + "/config.yaml"))
    throw ConfigError("--resume '" + c.output_dir + "': no config.yaml there, so it is not a run directory");
  Run r(c, false, /*check_dir=*/false);  // a run directory is not empty, by definition
  r.resume_ = true;
  const std::string id_file = c.output_dir + "/run.json";
  if (path_exists(id_file)) r.run_id_ = nlohmann::json::parse(read_file(id_file)).value("run_id", "");
  return r;
}

void Run::restore(int best_epoch, int since_best, const eval::Metrics& best) {
  best_epoch_ = best_epoch;
  since_best_ = since_best;
  best_ = best;
}

void Run::start() {
  if (!writes_) return;
  if (resume_) {
    metrics_ = std::make_unique<MetricsLog>(dir_, /*fresh=*/false);
    return;
  }
  if (overwrite_ && std::filesystem::is_directory(dir_))
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      if (written_by_a_run(e.path().filename().string())) remove_path(e.path().string());
  make_dirs(dir_);
  atomic_write_string(dir_ + "/run.json", nlohmann::json({{"run_id", run_id_}}).dump() + "\n");
  atomic_write_string(dir_ + "/config.yaml", config_yaml_);
  metrics_ = std::make_unique<MetricsLog>(dir_, /*fresh=*/true);
}

void Run::log(const nlohmann::json& record) {
  if (!writes_) return;
  if (!metrics_) throw Error("train::Run::log before start(): the run directory is not created yet");
  metrics_->write(record);
}

Progress Run::progress(const std::string& label, int64_t steps, int64_t samples_per_step) const {
  return Progress(label, steps, samples_per_step, log_every_);
}

bool Run::validation_due(int epoch) const { return epoch % eval_every_ == 0 || epoch == epochs_; }

bool Run::better(const eval::Metrics& a, const eval::Metrics& b) const {
  for (const auto& name : monitor_) {
    const auto x = a.get(name), y = b.get(name);
    if (!x || !y || *x == *y) continue;
    return *x > *y;
  }
  return false;
}

bool Run::report_validation(int epoch, int64_t step, const eval::Metrics& val,
                            const std::function<void(const std::string&)>& save, const std::string& mode) {
  log(metrics_record(epoch, step, "val", val, mode));
  const bool improved = best_epoch_ < 0 || better(val, best_);
  if (improved) {
    best_ = val;
    best_epoch_ = epoch;
    since_best_ = 0;
    if (writes_) atomic_write_dir(checkpoint_dir(), save);
  } else {
    ++since_best_;
  }
  return improved;
}

double Run::seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

nlohmann::json Run::finish(nlohmann::json results) {
  results["output_dir"] = dir_;
  results["checkpoint"] = checkpoint_dir();
  results["best_epoch"] = best_epoch_;
  results["val"] = best_.to_json();
  results["seconds"] = seconds();
  if (writes_) atomic_write_string(dir_ + "/results.json", results.dump(2) + "\n");
  return results;
}

void apply_run_settings(const Config& c) {
  static const int process_threads = torch::get_num_threads();  // the first call's: the process default
  const int threads = c.threads > 0 ? c.threads : process_threads;
  torch::set_num_threads(threads);
  record_threads(threads);  // what later processes see in the core ledger (common/core_share.h)
  torch::manual_seed(c.seed);
}

nlohmann::json metrics_record(int epoch, int64_t step, const char* split, const eval::Metrics& m,
                              const std::string& mode) {
  auto j = m.to_json();
  j["epoch"] = epoch;
  j["step"] = step;
  j["split"] = split;
  if (!mode.empty()) j["mode"] = mode;
  return j;
}

}  // namespace sbtrec::train
