// Filesystem helpers (see fs.h).
#include "sbtrec/common/fs.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

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

}  // namespace sbtrec
