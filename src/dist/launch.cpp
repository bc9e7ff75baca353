// The local launcher of data-parallel runs (see launch.h).
#include "sbtrec/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "sbtrec/common/core_share.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/process.h"

namespace sbtrec::dist {

namespace {

std::vector<pid_t> g_children;

void forward_signal(int sig) {
  for (pid_t p : g_children)
    if (p > 0) ::kill(p, sig);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw IoError(std::string("--nproc: cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, (sockaddr*)&a, sizeof a) != 0 || ::getsockname(fd, (sockaddr*)&a, &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw IoError("--nproc: cannot bind 127.0.0.1 to find a free port: " + why + " (set MASTER_PORT and launch the ranks yourself)");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

int launch_local(int nproc, const std::vector<std::string>& args) {
  if (nproc < 1) throw ConfigError("--nproc must be at least 1");
  const std::string exe = self_path();
  const int port = free_local_port();
  // The ranks share this process's cores (its share of the machine, common/core_share.h); while they
  // run, this process only waits, so it gives its threads back to the ledger.
  const int cores = std::max(1, at::get_num_threads());
  const std::string threads = std::to_string(std::max(1, cores / nproc));
  record_threads(0);
  spdlog::info("--nproc {}: starting ranks 0..{} on 127.0.0.1:{} ({} threads each)", nproc, nproc - 1, port,
               std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : threads.c_str());

  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGINT, &sa, &old_int);
  g_children.assign((size_t)nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    // This process's environment with the rank's variables (any inherited ones replaced).
    std::vector<std::string> env = {"RANK=" + std::to_string(r),        "WORLD_SIZE=" + std::to_string(nproc),
                                    "LOCAL_RANK=" + std::to_string(r),  "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                                    "MASTER_ADDR=127.0.0.1",            "MASTER_PORT=" + std::to_string(port)};
    if (!std::getenv("OMP_NUM_THREADS")) env.push_back("OMP_NUM_THREADS=" + threads);
    std::vector<std::string> argv = {exe};
    argv.insert(argv.end(), args.begin(), args.end());
    try {
      g_children[(size_t)r] = start_process(argv, env);
    } catch (const IoError& e) {
      forward_signal(SIGTERM);
      throw IoError(std::string("--nproc: ") + e.what());
    }
  }

  int code = 0, running = nproc, failed_rank = -1;
  auto deadline = std::chrono::steady_clock::time_point::max();
  constexpr auto kGrace = std::chrono::seconds(10);  // for the others to report their own error
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid <= 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        spdlog::error("--nproc: terminating the ranks still running after rank {} failed", failed_rank);
        forward_signal(SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    int r = 0;
    while (r < nproc && g_children[(size_t)r] != pid) ++r;
    if (r == nproc) continue;
    g_children[(size_t)r] = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && code == 0) {
      code = exit_code_of(status);
      failed_rank = r;
      spdlog::error("--nproc: rank {} {}", r, describe(status));
      if (running > 0) deadline = std::chrono::steady_clock::now() + kGrace;
    } else if (!ok) {
      spdlog::error("--nproc: rank {} {}", r, describe(status));
    }
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  g_children.clear();
  return code;
}

}  // namespace sbtrec::dist
