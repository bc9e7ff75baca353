// Helpers for the tests: temporary directories, paths to ../shared, running the programs.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace sbtrec::test {

inline std::string shared(const std::string& rel) { return std::string(SBTREC_SHARED_DIR) + "/" + rel; }
inline std::string source(const std::string& rel) { return std::string(SBTREC_SOURCE_DIR) + "/" + rel; }
inline std::string bin(const std::string& name) { return std::string(SBTREC_BINARY_DIR) + "/bin/" + name; }

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

}  // namespace sbtrec::test

// Skips the test when a file or directory under ../shared is absent, saying what is missing.
#define SBTREC_REQUIRE_SHARED(rel)                                                                   \
  do {                                                                                              \
    if (!std::filesystem::exists(::sbtrec::test::shared(rel)))                                      \
      GTEST_SKIP() << "missing " << ::sbtrec::test::shared(rel)                                     \
                   << " (the read-only shared data folder beside the repository)";                  \
  } while (0)
