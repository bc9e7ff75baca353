// Filesystem helpers: whole-file reads with useful errors, and atomic writes (temp file + rename) so
// an interrupted run never leaves a half-written checkpoint, config or export behind.
#pragma once
#include <cstddef>
#include <cstdint>
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

// A whole file mapped read-only (private) into memory, for checkpoint readers that hand out views of
// tensor bytes without copying the file. Throws CheckpointError naming the path (`kind` says what
// the file should be, e.g. "safetensors file") when it cannot be opened or mapped.
class MappedFile {
 public:
  MappedFile(const std::string& path, const std::string& kind);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return (const uint8_t*)map_; }
  size_t size() const { return size_; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sbtrec
