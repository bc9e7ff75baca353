// Progress line and metrics log (see progress.h).
#include "sbtrec/common/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  const int64_t t = (int64_t)(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", (long)(t / 3600), (long)(t / 60 % 60));
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", (long)(t / 60), (long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lds", (long)t);
  return buf;
}

std::string format_rate(double r) {
  if (r < 0 || r != r) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, r >= 100 ? "%.0f" : r >= 10 ? "%.1f" : "%.2f", r);
  return buf;
}

Progress::Progress(std::string label, int64_t total, int64_t samples_per_step, int log_every)
    : label_(std::move(label)), total_(total), samples_per_step_(samples_per_step), log_every_(log_every),
      tty_(::isatty(STDOUT_FILENO)), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::samples_per_second() const {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return secs > 0 ? (double)(step_ * samples_per_step_) / secs : 0.0;
}

void Progress::update(int64_t step, double value, const char* name) {
  step_ = step;
  loss_ = value;
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double eta = step > 0 ? secs / step * (total_ - step) : -1;
  if (tty_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.1 && step != total_) return;
    last_draw_ = now;
    std::printf("\r%s step %ld/%ld  %s %.4f  %s samples/s  ETA %s   ", label_.c_str(), (long)step, (long)total_,
                name, value, format_rate(samples_per_second()).c_str(), format_duration(eta).c_str());
    std::fflush(stdout);
  } else if (step % log_every_ == 0 && std::chrono::duration<double>(now - last_draw_).count() >= 10.0) {
    last_draw_ = now;
    spdlog::info("{} step {}/{} {} {:.4f} {} samples/s ETA {}", label_, step, total_, name, value,
                 format_rate(samples_per_second()), format_duration(eta));
  }
}

void Progress::finish() {
  if (tty_) {
    std::printf("\r%*s\r", 100, "");
    std::fflush(stdout);
  }
}

MetricsLog::MetricsLog(const std::string& dir, bool fresh) : path_(dir + "/metrics.jsonl") {
  make_dirs(dir);
  if (fresh) atomic_write_string(path_, "");
}

void MetricsLog::write(const nlohmann::json& record) {
  std::ofstream out(path_, std::ios::app);
  if (!out) throw IoError("cannot append to '" + path_ + "'");
  out << record.dump() << "\n";
  out.flush();
}

}  // namespace sbtrec
