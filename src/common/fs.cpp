// Filesystem helpers (see fs.h).
#include "sbtrec/common/fs.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sbtrec/common/error.h"

namespace fs = std::filesystem;

namespace sbtrec {

std::string read_file(const std::string& path, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string msg = "cannot open '" + path + "'";
    if (!fs::exists(path)) msg += ": no such file";
    if (!hint.empty()) msg += ". " + hint;
    throw IoError(msg);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write) {
  fs::path target(path);
  if (target.has_parent_path()) make_dirs(target.parent_path().string());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw IoError("cannot create '" + tmp + "' (is the directory writable?)");
      write(out);
      out.flush();
      if (!out) throw IoError("write to '" + tmp + "' failed (disk full?)");
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void atomic_write_string(const std::string& path, const std::string& content) {
  atomic_write(path, [&](std::ostream& out) { out.write(content.data(), (std::streamsize)content.size()); });
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw IoError("cannot create directory '" + path + "': " + ec.message());
}

bool path_exists(const std::string& path) { return fs::exists(path); }

bool nonempty_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::directory_iterator(path, ec) != fs::directory_iterator();
}

void remove_path(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw IoError("cannot remove '" + path + "': " + ec.message());
}

void atomic_write_dir(const std::string& path, const std::function<void(const std::string&)>& fill) {
  const std::string pid = std::to_string(::getpid());
  const std::string tmp = path + ".tmp." + pid, old = path + ".old." + pid;
  try {
    remove_path(tmp);
    make_dirs(tmp);
    fill(tmp);
    std::error_code ec;
    if (fs::exists(path)) {
      fs::rename(path, old, ec);
      if (ec) throw IoError("cannot move '" + path + "' aside to '" + old + "': " + ec.message());
    }
    fs::rename(tmp, path, ec);
    if (ec) {
      std::error_code ignored;
      if (fs::exists(old)) fs::rename(old, path, ignored);
      throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
    }
    remove_path(old);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
}

std::string resolve_checkpoint_dir(const std::string& path, const std::string& marker) {
  if (fs::exists(fs::path(path) / marker)) return path;
  const std::string nested = (fs::path(path) / "checkpoint").string();
  if (fs::exists(fs::path(nested) / marker)) return nested;
  throw CheckpointError("no checkpoint at '" + path + "': neither '" + (fs::path(path) / marker).string() + "' nor '" +
                        (fs::path(nested) / marker).string() +
                        "' exists. Pass a checkpoint directory or the run directory that sbtrec-train wrote");
}

MappedFile::MappedFile(const std::string& path, const std::string& kind) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw CheckpointError("cannot open " + kind + " '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CheckpointError("cannot read " + kind + " '" + path + "': not a regular file");
  }
  size_ = (size_t)st.st_size;
  if (size_ > 0) {
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      const int err = errno;
      ::close(fd);
      throw CheckpointError("cannot map " + kind + " '" + path + "' into memory: " + std::strerror(err));
    }
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

}  // namespace sbtrec
