// How a program's OpenMP threads wait, chosen by the program rather than by the user's environment.
//
// At the end of a parallel region libgomp's threads spin before they sleep: up to GOMP_SPINCOUNT =
// 300,000 iterations by default (OMP_WAIT_POLICY unset), milliseconds. Alone on its cores, spinning
// saves a wake-up per region; beside another process it holds a core the other process needs. No
// wait policy rescues two processes that each run a thread per core (the core share does that:
// common/core_share.h), but when one process with a thread per core runs beside a one-thread process,
// a short spin keeps both near their fair share (BENCHMARKS.md, "Shared cores": the SBT-Rec step 6.3 s
// and 6.8 s at 10,000 spins, 9.1 s and 7.9 s at libgomp's default; alone 3.23 s against 3.10 s).
// sbtrec programs spin for at most kOpenmpSpinCount iterations, then sleep.
//
// libgomp reads its environment once, in its own constructor, before main() runs, and a variable set
// from the executable's .preinit_array is lost (libc installs the original environment when it
// initialises). So the program starts itself again at once with the setting added, from the
// .preinit_array, which the dynamic loader runs after mapping the libraries and before any of their
// constructors: the second start costs about 40 ms (the loader again), not LibTorch's 0.35 s of
// initialisation. The pid, arguments, open files and signal dispositions stay.
//
// Write SBTREC_OPENMP_DEFAULTS() once at namespace scope in a source file of the executable: every
// sbtrec program has it (src/cli/cli_common.h); a C++ experiment linking the library may add it too.
// A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept: whoever sets either has chosen.
#pragma once

#include <unistd.h>

#include <cstring>

namespace sbtrec {

// Spin iterations before a waiting thread sleeps (libgomp's GOMP_SPINCOUNT).
inline constexpr const char* kOpenmpSpinCount = "10000";

// When `envp` chooses no wait policy, starts this program again with GOMP_SPINCOUNT=kOpenmpSpinCount
// added; returns only when it did not (the environment chooses, or the restart failed).
inline void apply_openmp_defaults(int, char** argv, char** envp) {
  if (!argv || !envp) return;
  // Started through the dynamic loader (`ld.so PROGRAM ...`), /proc/self/exe is the loader itself,
  // which would read these arguments as its own: no restart.
  char exe[4096];
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return;
  exe[len] = '\0';
  const char* base = std::strrchr(exe, '/');
  if (!std::strncmp(base ? base + 1 : exe, "ld-", 3)) return;
  int n = 0;
  for (; envp[n]; ++n)
    if (!std::strncmp(envp[n], "OMP_WAIT_POLICY=", 16) || !std::strncmp(envp[n], "GOMP_SPINCOUNT=", 15)) return;
  static char setting[] = "GOMP_SPINCOUNT=";
  static char entry[sizeof setting + 16];
  std::strcpy(entry, setting);
  std::strcat(entry, kOpenmpSpinCount);
  char** env = new char*[(size_t)n + 2];
  for (int i = 0; i < n; ++i) env[i] = envp[i];
  env[n] = entry;
  env[n + 1] = nullptr;
  ::execve("/proc/self/exe", argv, env);
  delete[] env;  // the restart failed: go on with libgomp's defaults
}

}  // namespace sbtrec

// Runs sbtrec::apply_openmp_defaults before any shared library's constructor (ELF .preinit_array,
// honoured in executables only).
#define SBTREC_OPENMP_DEFAULTS()                                                                         \
  [[gnu::section(".preinit_array"), gnu::used]] static void (*sbtrec_openmp_defaults_at_load)(int, char**, \
                                                                                              char**) = \
      &::sbtrec::apply_openmp_defaults
