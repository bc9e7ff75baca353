// Exception families. Every message says what went wrong, where (file, line, key), and what to do;
// the programs print it and exit non-zero (cli::guarded_main in src/cli/cli_common.h).
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
struct EvalError : Error { using Error::Error; };        // evaluation inputs or scores that cannot give metrics

}  // namespace sbtrec
