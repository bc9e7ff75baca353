// `sbtrec-train --nproc N`: the local launcher. Starts N copies of the running program as ranks 0..N-1
// of one machine's world (the variables torchrun sets: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port), each with OMP_NUM_THREADS =
// this process's share of the cores / N unless the environment sets it (the launcher gives its own
// share back to the core ledger while the ranks run); forwards SIGINT / SIGTERM; when a rank fails,
// gives the others a short grace to report their own error, then terminates them.
#pragma once
#include <string>
#include <vector>

namespace sbtrec::dist {

// Runs `args` (argv[1..] of this program without --nproc) as `nproc` local ranks and returns the
// exit code: 0 when every rank succeeded, else the first failing rank's (128 + signal if it was killed).
int launch_local(int nproc, const std::vector<std::string>& args);

// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0 and released).
int free_local_port();

}  // namespace sbtrec::dist
