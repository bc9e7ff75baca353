// Helpers for the tests: temporary directories, paths to ../shared, running the programs.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "sbtrec/llm/options.h"

namespace sbtrec::test {

inline std::string shared(const std::string& rel) { return std::string(SBTREC_SHARED_DIR) + "/" + rel; }
inline std::string source(const std::string& rel) { return std::string(SBTREC_SOURCE_DIR) + "/" + rel; }
inline std::string bin(const std::string& name) { return std::string(SBTREC_BINARY_DIR) + "/bin/" + name; }

// The pretrained model the LLM tests use (SmolLM2-135M-Instruct, GGUF): $SBTREC_DEFAULT_MODEL, else
// the copy the model package installs into .venv.
inline std::string default_model_gguf() { return llm::default_model_path(); }

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("sbtrec-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline CommandResult run(const std::string& command) {
  CommandResult r{0, ""};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// stdout alone: the program's logs (stderr) are dropped, so what it prints on stdout is all there is,
// whatever it had to say (e.g. the cores other sbtrec processes hold).
inline CommandResult run_stdout(const std::string& command) { return run("(" + command + " 2>/dev/null)"); }

// A fixture directory made by `command` (which gets " --out DIR" appended) once per build tree and
// per `inputs` (the text that determines it, e.g. the generating script): ctest runs every TEST in
// its own process, so fixtures that take a Python reference run or a training run are kept in
// <build>/test-fixtures/<name>-<hash> and reused. Made in place under a lock, and marked COMPLETE
// last: concurrent test processes make it once, never use half of one, and a maker that died leaves a
// directory the next one replaces. On failure returns "" and sets *error.
inline std::string cached_fixture(const std::string& name, const std::string& inputs, const std::string& command,
                                  std::string* error) {
  const auto key = std::to_string(std::hash<std::string>{}(inputs));
  const std::filesystem::path root = std::filesystem::path(SBTREC_BINARY_DIR) / "test-fixtures";
  const std::filesystem::path dir = root / (name + "-" + key);
  if (std::filesystem::exists(dir / "COMPLETE")) return dir.string();
  std::filesystem::create_directories(root);
  const int lock = ::open((root / (name + "-" + key + ".lock")).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);  // released when closed, or when this process dies
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);
    }
  } unlock{lock};
  if (std::filesystem::exists(dir / "COMPLETE")) return dir.string();  // made while this one waited
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // what a maker that died left
  auto r = run(command + " --out " + dir.string());
  if (r.exit_code != 0) {
    *error = command + " failed:\n" + r.output;
    std::filesystem::remove_all(dir, ec);
    return "";
  }
  std::ofstream(dir / "COMPLETE") << key;
  return dir.string();
}

// Text that changes whenever the library or the programs are rebuilt: part of the inputs of a fixture
// that the programs make (a training run, fitted codebooks), so a rebuild makes it again.
inline std::string build_stamp() {
  std::string s;
  for (const char* f : {"libsbtrec.so", "bin/sbtrec-train", "bin/sbtrec-quantize", "bin/sbtrec-data"}) {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(std::filesystem::path(SBTREC_BINARY_DIR) / f, ec);
    s += std::string(f) + "@" + std::to_string(ec ? 0 : (long long)t.time_since_epoch().count()) + ";";
  }
  return s;
}

// cached_fixture for a bash script, which gets the output directory as $2 (after "--out"); made again
// after every rebuild (build_stamp).
inline std::string script_fixture(const std::string& name, const std::string& script, std::string* error) {
  const std::string inputs = script + build_stamp();
  const std::filesystem::path root = std::filesystem::path(SBTREC_BINARY_DIR) / "test-fixtures";
  std::filesystem::create_directories(root);
  const std::string file = (root / (name + "-" + std::to_string(std::hash<std::string>{}(inputs)) + ".sh")).string();
  if (!std::filesystem::exists(file)) {
    const std::string tmp = file + ".tmp" + std::to_string(std::random_device{}());
    std::ofstream(tmp) << "set -euo pipefail\n" << script << "\n";
    std::filesystem::rename(tmp, file);
  }
  return cached_fixture(name, inputs, "bash " + file, error);
}

// Runs `code` with the project's Python (SBTREC_PYTHON), the repository's scripts/ importable; `args`
// are appended to the command line as they are (quote them). The code goes through a file in `dir`.
inline CommandResult run_python(const TempDir& dir, const std::string& code, const std::string& args = "") {
  const std::string script = dir / "snippet.py";
  write_text(script, "import sys\nsys.path.insert(0, '" + source("scripts") + "')\n" + code);
  return run(std::string(SBTREC_PYTHON) + " " + script + " " + args);
}

}  // namespace sbtrec::test

// Skips the test when a file or directory under ../shared is absent, saying what is missing.
#define SBTREC_REQUIRE_SHARED(rel)                                                                   \
  do {                                                                                              \
    if (!std::filesystem::exists(::sbtrec::test::shared(rel)))                                      \
      GTEST_SKIP() << "missing " << ::sbtrec::test::shared(rel)                                     \
                   << " (the read-only shared data folder beside the repository)";                  \
  } while (0)

// Skips the test when the pretrained model file (test::default_model_gguf) is absent.
#define SBTREC_REQUIRE_MODEL()                                                                       \
  do {                                                                                              \
    if (!std::filesystem::exists(::sbtrec::test::default_model_gguf()))                             \
      GTEST_SKIP() << "missing " << ::sbtrec::test::default_model_gguf()                            \
                   << " (set SBTREC_DEFAULT_MODEL, or install the SmolLM2 package into .venv)";   \
  } while (0)

// Skips the test when the project's Python (.venv, made by scripts/setup.sh) is absent.
#define SBTREC_REQUIRE_PYTHON()                                                                      \
  do {                                                                                              \
    if (!std::filesystem::exists(SBTREC_PYTHON))                                                    \
      GTEST_SKIP() << "missing " << SBTREC_PYTHON << " (run ./scripts/setup.sh)";                   \
  } while (0)
