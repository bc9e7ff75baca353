// Run lifecycle (see run.h).
#include "sbtrec/train/run.h"

#include <spdlog/spdlog.h>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

#include <filesystem>

namespace sbtrec::train {

namespace {
const char* const kRunFiles[] = {"config.yaml", "metrics.jsonl", "results.json", "checkpoint", "metrics.png"};
}

Run::Run(const Config& c, bool overwrite) : Run(c, overwrite, /*check_dir=*/true) {}

Run::Run(const Config& c, bool overwrite, bool check_dir)
    : dir_(c.output_dir),
      config_yaml_(config_to_yaml(c)),
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
  if (overwrite_)
    for (const char* f : kRunFiles) remove_path(dir_ + "/" + f);
  make_dirs(dir_);
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
                            const std::function<void(const std::string&)>& save) {
  log(metrics_record(epoch, step, "val", val));
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

nlohmann::json metrics_record(int epoch, int64_t step, const char* split, const eval::Metrics& m) {
  auto j = m.to_json();
  j["epoch"] = epoch;
  j["step"] = step;
  j["split"] = split;
  return j;
}

}  // namespace sbtrec::train
