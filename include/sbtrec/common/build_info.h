// Which build of sbtrec a process runs, for the records a run leaves (results.json "build"): a study
// that spans sessions may mix binaries (a rebuild between its seeds), and its report should be able to
// say so. The library is identified by its content, not by a version string someone must remember to bump.
#pragma once
#include <nlohmann/json.hpp>

namespace sbtrec {

// {"library": path of the loaded libsbtrec, "library_sha256": its first 12 hex digits (computed once per
// process), "torch": LibTorch's version, "cpu_flags": the CPU's avx* / amx* flags (Linux; empty elsewhere)}.
const nlohmann::json& build_info();

}  // namespace sbtrec
