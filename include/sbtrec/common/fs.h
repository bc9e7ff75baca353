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
// True when `path` is a directory holding at least one entry.
bool nonempty_dir(const std::string& path);
// Removes a file or a directory tree if present; throws IoError on failure.
void remove_path(const std::string& path);

// Fills `<path>.tmp.<pid>/` with `fill(tmp_dir)`, then puts it in place of `path` by renames, so
// `path` always holds either the previous complete directory or the new one (checkpoints).
void atomic_write_dir(const std::string& path, const std::function<void(const std::string& tmp_dir)>& fill);

// A checkpoint given as its directory or as a run directory holding it in checkpoint/: returns the
// first of `path`, `path/checkpoint` that contains `marker` (e.g. "model.safetensors"); throws
// CheckpointError naming both places otherwise.
std::string resolve_checkpoint_dir(const std::string& path, const std::string& marker);

}  // namespace sbtrec
