// See parallel.h.
#include "sbtrec/common/parallel.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace sbtrec {

int library_parallel_threads() {
  const int n = at::get_num_threads();
  std::atomic<uint64_t> seen{0};  // bit t: thread t ran a task
  // One task per thread, each long enough that no thread finishes before the others start theirs.
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    seen |= uint64_t(1) << (at::get_thread_num() % 64);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  return __builtin_popcountll(seen.load());
}

}  // namespace sbtrec
