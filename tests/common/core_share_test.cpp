// The core share: a process takes the cores other live sbtrec processes have not taken, sees a dead
// holder's claim vanish, and sees a claim given back (record_threads(0)). Holders here are forked
// children of the test, each with its own ledger record; the ledger is a private directory.
#include "sbtrec/common/core_share.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "../test_util.h"

using namespace sbtrec;

namespace {

// A child that claims its share, reports its threads through a pipe, optionally gives them back, and
// waits until it is killed.
struct Holder {
  pid_t pid = -1;
  int threads = 0;
  explicit Holder(bool give_back = false) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      const auto share = claim_cores();
      if (give_back) record_threads(0);
      (void)!::write(fds[1], &share.threads, sizeof share.threads);
      for (;;) ::pause();
    }
    ::close(fds[1]);
    (void)!::read(fds[0], &threads, sizeof threads);
    ::close(fds[0]);
  }
  void kill() {
    if (pid > 0) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0), pid = -1;
  }
  ~Holder() { kill(); }
};

}  // namespace

TEST(CoreShare, ALaterProcessTakesTheCoresLeftAndADeadHoldersClaimVanishes) {
  test::TempDir dir;
  ::setenv("SBTREC_CORE_LEDGER", (dir / "ledger").c_str(), 1);
  ::unsetenv("OMP_NUM_THREADS");  // the share, not ctest's one thread per test
  {
    Holder first;
    ASSERT_GT(first.pid, 0);
    const int cores = first.threads;  // alone in a fresh ledger: every core
    ASSERT_GE(cores, 1);
    Holder second;
    EXPECT_EQ(second.threads, std::max(1, cores - cores)) << "what the first left: none, so one thread";

    Holder returned(/*give_back=*/true);  // a launcher: claims, then gives its threads back to its ranks
    const auto share = claim_cores();     // this process, beside all three
    EXPECT_EQ(share.cores, cores);
    EXPECT_EQ(share.others, first.threads + second.threads);
    EXPECT_EQ(share.threads, std::max(1, cores - share.others));
    EXPECT_FALSE(share.from_environment);
    for (pid_t p : {first.pid, second.pid, returned.pid})
      EXPECT_NE(std::find(share.holders.begin(), share.holders.end(), p), share.holders.end()) << p;
    EXPECT_NE(share.describe().find(std::to_string(first.pid)), std::string::npos) << share.describe();

    first.kill();  // however a process ends, the kernel drops its lock: its claim is gone at the next claim
    const auto after = claim_cores();
    EXPECT_EQ(after.others, second.threads);
    EXPECT_EQ(std::count(after.holders.begin(), after.holders.end(), first.pid), 0);
    EXPECT_FALSE(std::filesystem::exists(dir / ("ledger/" + std::to_string(first.pid))));
  }
  // OMP_NUM_THREADS chooses, whatever the ledger holds.
  ::setenv("OMP_NUM_THREADS", "3", 1);
  const auto chosen = claim_cores();
  EXPECT_EQ(chosen.threads, 3);
  EXPECT_TRUE(chosen.from_environment);
  ::setenv("OMP_NUM_THREADS", "1", 1);
  ::unsetenv("SBTREC_CORE_LEDGER");
}
