// The lifecycle every trainer shares (torchtune's recipe shape): a run directory that is refused
// when it already holds something (unless overwriting), nothing written before the inputs are
// checked, the resolved config.yaml, a fresh metrics.jsonl, progress lines, the validation schedule,
// early stopping on named metrics, the best checkpoint written atomically, and results.json.
//   <output_dir>/config.yaml  run.json  metrics.jsonl  checkpoint/  results.json
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sbtrec/common/progress.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/config/config.h"

namespace sbtrec::train {

class Run {
 public:
  // Checks only: throws ConfigError when output_dir is a file, or a non-empty directory and
  // `overwrite` is false. Writes nothing.
  Run(const Config& config, bool overwrite);
  // Continues the run in output_dir (sbtrec-train --resume): it must hold config.yaml; start() keeps
  // every file and appends to metrics.jsonl; restore() brings back the early-stopping state.
  static Run resuming(const Config& config);

  // Ranks other than 0 of a data-parallel run: the same bookkeeping (best epoch, patience, results),
  // no files at all (rank 0 writes the run directory). Call before start().
  void set_writes(bool writes) { writes_ = writes; }
  bool writes() const { return writes_; }

  // Call once the inputs are checked: creates output_dir (with `overwrite`, first removes everything a
  // previous run wrote there: config.yaml, run.json, metrics.jsonl, results.json, checkpoint/, state/,
  // metrics.png, predictions.jsonl and sbtrec-eval's predictions_*.jsonl; other files stay), writes
  // run.json (this run's id), config.yaml and an empty metrics.jsonl.
  void start();

  // This run's identity: fresh for a new run, read from run.json when resuming (empty when the
  // directory has none). The training state records it, so --resume refuses another run's state/.
  const std::string& run_id() const { return run_id_; }

  const std::string& dir() const { return dir_; }
  std::string checkpoint_dir() const { return dir_ + "/checkpoint"; }
  const std::string& config_yaml() const { return config_yaml_; }

  // One record of metrics.jsonl.
  void log(const nlohmann::json& record);
  // A progress line for one epoch (train.log_every).
  Progress progress(const std::string& label, int64_t steps, int64_t samples_per_step) const;

  // Validate after `epoch` (1-based) when it is a multiple of train.eval_every or the last epoch.
  bool validation_due(int epoch) const;
  // Records a validation result (also into metrics.jsonl). When it beats the best so far on
  // train.monitor, calls `save(dir)` to fill a fresh checkpoint directory that then replaces
  // checkpoint/ atomically, and returns true.
  // `mode`: the evaluation's name, recorded beside the split ("" = not recorded).
  bool report_validation(int epoch, int64_t step, const eval::Metrics& val,
                         const std::function<void(const std::string& dir)>& save, const std::string& mode = "");
  // Patience exhausted (train.patience validations without improvement).
  bool should_stop() const { return since_best_ >= patience_; }
  int best_epoch() const { return best_epoch_; }
  int since_best() const { return since_best_; }
  void restore(int best_epoch, int since_best, const eval::Metrics& best);
  const eval::Metrics& best() const { return best_; }

  // Writes results.json atomically (rank 0): `results` plus output_dir, checkpoint, best_epoch, best val
  // metrics and the run's seconds. Returns what was written.
  nlohmann::json finish(nlohmann::json results);
  double seconds() const;

 private:
  Run(const Config& config, bool overwrite, bool check_dir);
  bool better(const eval::Metrics& a, const eval::Metrics& b) const;

  std::string dir_, config_yaml_, run_id_;
  bool overwrite_, resume_ = false, writes_ = true;
  int epochs_, eval_every_, patience_, log_every_;
  std::vector<std::string> monitor_;
  std::unique_ptr<MetricsLog> metrics_;
  int best_epoch_ = -1, since_best_ = 0;
  eval::Metrics best_;
  std::chrono::steady_clock::time_point t0_;
};

// What a run sets in the process, set per run so that runs can follow one another in one process:
// torch's intra-op threads (config `threads`; 0 = the count the process started with, not whatever an
// earlier run left) and torch's generator (seeded with the run's seed; recipes reseed their own
// streams). The programs call it once the config is loaded.
void apply_run_settings(const Config& config);

// The `record` lines of metrics.jsonl for an evaluation: metrics plus epoch, step, split and (when
// given) the evaluation's mode.
nlohmann::json metrics_record(int epoch, int64_t step, const char* split, const eval::Metrics& m,
                              const std::string& mode = "");

}  // namespace sbtrec::train
