// Filesystem helpers: whole-file reads with useful errors, and atomic writes (temp file + rename) so
// an interrupted run never leaves a half-written checkpoint, config or export behind.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace sbtrec {

// Reads a whole file; throws IoError naming the path (and `hint`, e.g. where to download it).
std::string read_file(const std::string& path, const std::string& hint = "");

// Writes via `path.tmp.<pid>` and rename(2). `write` fills the stream; on any exception the
// temporary is removed and the destination is untouched.
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write);
void atomic_write_string(const std::string& path, const std::string& content);

// Creates a directory and its parents; throws IoError on failure.
void make_dirs(const std::string& path);
bool path_exists(const std::string& path);

}  // namespace sbtrec
