// Progress reporting for long loops and the per-run metrics log. On a terminal the progress line
// redraws in place; otherwise it becomes a log line every `log_every` steps, at most one per 10 s
// (CI logs stay readable).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace sbtrec {

class Progress {
 public:
  Progress(std::string label, int64_t total_steps, int64_t samples_per_step, int log_every);
  // Call after each step with the running loss (or another running figure, named by `name`).
  void update(int64_t step, double value, const char* name = "loss");
  void finish();
  double samples_per_second() const;

 private:
  std::string label_;
  int64_t total_, samples_per_step_, step_ = 0;
  int log_every_;
  bool tty_;
  double loss_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Appends one JSON object per line to <dir>/metrics.jsonl, flushed per line so a crash keeps it.
// `fresh` starts the file empty (a new run never continues an old run's log).
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& dir, bool fresh = true);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string format_duration(double seconds);
// A rate with three significant figures at most and no exponent ("0.27", "3.41", "41.2", "20013"), so
// SBT-Rec's fraction of a sample per second does not print as 0.
std::string format_rate(double per_second);

}  // namespace sbtrec
