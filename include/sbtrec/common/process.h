// Starting child processes: this program's path, and a child started with this process's environment
// plus changes (the data-parallel launcher's ranks, a study's runs). posix_spawn, so it is safe from
// threads. (common/openmp_defaults.h restarts the program by itself before any library is set up.)
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sbtrec {

// The absolute path of this program (/proc/self/exe); IoError when it cannot be read.
std::string self_path();

// Starts `args[0]` (a path) with `args` and this process's environment, where each "KEY=value" of
// `env` replaces the variable KEY (or adds it); the child's output goes to ours. Returns its pid;
// IoError naming the program when it cannot start.
pid_t start_process(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

// Waits for `pid` and returns its exit status, or 128 + the signal that ended it.
int wait_process(pid_t pid);

// A process's wait status as an exit code: its exit status, 128 + the signal that ended it, else 1.
int exit_code_of(int wait_status);

}  // namespace sbtrec
