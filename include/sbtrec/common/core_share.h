// Threads per process on shared cores: each sbtrec program takes the cores that other sbtrec processes
// of this user on this machine have not taken, at least one.
//
// Two OpenMP processes with a thread per core each, on the same cores, collapse far below half speed:
// each parallel region waits at its barrier for a thread the other process holds (BENCHMARKS.md,
// "Shared cores": SASRec 104,000 samples/s alone, 21,000 each beside a copy; one thread each keeps
// 52,000). So a process that starts beside others takes only the cores left free.
//
// The ledger is a directory, /tmp/sbtrec-cores-<uid>/ (or $SBTREC_CORE_LEDGER), with one file per
// live process (named by its pid, holding its threads) that the process keeps locked (flock) while it
// lives: the kernel drops the lock when it exits, however it exits, and the next claim removes the
// file. Claims are made under a lock of the whole directory, so processes started together see each
// other.
#pragma once

#include <string>
#include <vector>

namespace sbtrec {

struct CoreShare {
  int cores = 1;      // the cores this process may run on (its CPU affinity)
  int others = 0;     // threads held by other live sbtrec processes
  int threads = 1;    // what this process takes: max(1, cores - others), or OMP_NUM_THREADS when set
  bool from_environment = false;  // OMP_NUM_THREADS chose `threads`
  std::vector<int> holders;       // pids of the other processes
  std::string describe() const;   // one line for the log
};

// Claims this process's share and records it in the ledger (once per process; later calls update the
// record). A ledger that cannot be used (no /tmp, no locks) gives the whole machine, as before.
CoreShare claim_cores();

// Records that this process now runs `threads` threads (0 while it only waits, e.g. a launcher whose
// ranks do the work), so processes that start later see it.
void record_threads(int threads);

}  // namespace sbtrec
