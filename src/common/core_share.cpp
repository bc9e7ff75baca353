// See core_share.h.
#include "sbtrec/common/core_share.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace sbtrec {
namespace {

int g_record_fd = -1;  // this process's ledger file, locked while the process lives

std::string ledger_dir() {
  if (const char* d = std::getenv("SBTREC_CORE_LEDGER"); d && *d) return d;
  return "/tmp/sbtrec-cores-" + std::to_string(::getuid());
}

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return (int)std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
}

void write_threads(int fd, int threads) {
  const std::string s = std::to_string(threads) + "\n";
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, s.data(), s.size(), 0);
}

// Sums the threads of live holders (files whose lock is held), removing the files of dead ones.
int count_others(const std::string& dir, std::vector<int>* holders) {
  int sum = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  const std::string self = std::to_string(::getpid());
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos || name == self) continue;
    const std::string path = dir + "/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {  // nobody holds it: its process is gone
      ::unlink(path.c_str());
    } else {
      char buf[32] = {0};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      const int t = n > 0 ? std::atoi(buf) : 0;
      sum += std::max(0, t);
      holders->push_back(std::atoi(name.c_str()));
    }
    ::close(fd);
  }
  ::closedir(d);
  return sum;
}

}  // namespace

std::string CoreShare::describe() const {
  std::string s = std::to_string(threads) + " thread" + (threads == 1 ? "" : "s") + " of " + std::to_string(cores) +
                  " core" + (cores == 1 ? "" : "s");
  if (from_environment) return s + " (OMP_NUM_THREADS)";
  if (others == 0) return s;
  s += " (" + std::to_string(others) + " taken by sbtrec pid";
  for (size_t i = 0; i < holders.size(); ++i) s += (i ? ", " : " ") + std::to_string(holders[i]);
  return s + "; set threads: to choose)";
}

CoreShare claim_cores() {
  CoreShare c;
  c.cores = affinity_cores();
  c.threads = c.cores;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) {
    c.threads = std::atoi(env);
    c.from_environment = true;
  }
  const std::string dir = ledger_dir();
  ::mkdir(dir.c_str(), 0700);
  const int lock = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return c;
  if (::flock(lock, LOCK_EX) == 0) {
    c.others = count_others(dir, &c.holders);
    if (!c.from_environment) c.threads = std::max(1, c.cores - c.others);
    if (g_record_fd < 0) {
      g_record_fd = ::open((dir + "/" + std::to_string(::getpid())).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (g_record_fd >= 0 && ::flock(g_record_fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(g_record_fd);
        g_record_fd = -1;
      }
    }
    if (g_record_fd >= 0) write_threads(g_record_fd, c.threads);
  }
  ::close(lock);  // drops the directory lock
  return c;
}

void record_threads(int threads) {
  if (g_record_fd >= 0) write_threads(g_record_fd, threads);
}

}  // namespace sbtrec
