// Shared by the thin programs in src/cli: config options (--config, --set, --dump-config), logging
// setup, and the error boundary that turns exceptions into one clear message and exit code 1.
#pragma once
#include <CLI/CLI.hpp>
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "sbtrec/config/config.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/core_share.h"
#include "sbtrec/common/host_memory.h"
#include "sbtrec/common/openmp_defaults.h"

// Every program: libgomp bounds its spin-waiting (common/openmp_defaults.h), set before it loads.
SBTREC_OPENMP_DEFAULTS();

namespace sbtrec::cli {

struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
  bool dump = false;

  void add_to(CLI::App& app, bool required = true) {
    auto* c = app.add_option("--config,-c", path, "YAML config file (see configs/)");
    if (required) c->required();
    app.add_option("--set", overrides, "Override a config key, e.g. --set train.epochs=50 (repeatable)");
    app.add_flag("--dump-config", dump, "Print the resolved config as YAML and exit");
  }
  // Loads the config; with --dump-config prints it and returns false (caller exits 0).
  bool load(Config& out) const {
    out = load_config(path, overrides);
    if (dump) {
      std::cout << config_to_yaml(out);
      return false;
    }
    return true;
  }
};

// Logs go to stderr so stdout carries results only (tables, --json lines, exported text); the host
// allocator keeps freed memory (sbtrec/common/host_memory.h).
// Host memory, the logger, and this process's share of the cores (common/core_share.h): its threads
// unless a run's `threads` says otherwise.
inline void setup_process() {
  sbtrec::retain_freed_host_memory();
  auto logger = spdlog::stderr_color_mt("sbtrec");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug shows the debug lines (e.g. evaluation batches)
  const auto share = sbtrec::claim_cores();
  torch::set_num_threads(share.threads);
  // Said when the share was cut by others (not when OMP_NUM_THREADS chose: stdout and stderr of a
  // program under a test harness stay as they were).
  if (!share.from_environment && share.others > 0) spdlog::info("threads: {}", share.describe());
}

inline int guarded_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const sbtrec::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error (torch): %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}

}  // namespace sbtrec::cli

// Parses argv with CLI11 and returns from main on --help (0) or a usage error (1, as every other
// error; CLI11's own codes differ per kind of mistake).
#define SBTREC_PARSE(app, argc, argv)           \
  try {                                         \
    (app).parse((argc), (argv));                \
  } catch (const CLI::ParseError& e) {          \
    return (app).exit(e) == 0 ? 0 : 1;          \
  }
