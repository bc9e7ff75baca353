// Exception families. Every message says what went wrong, where (file, line, key), and what to do;
// the programs print it and exit non-zero (see cli/main_guard.h).
#pragma once
#include <stdexcept>
#include <string>

namespace sbtrec {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ConfigError : Error { using Error::Error; };      // YAML / --set / option values
struct DataError : Error { using Error::Error; };        // dataset files, samples, candidates
struct CheckpointError : Error { using Error::Error; };  // safetensors, checkpoint directories
struct IoError : Error { using Error::Error; };          // filesystem failures

}  // namespace sbtrec
