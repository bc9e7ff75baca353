// The library's kernels run on the threads torch::set_num_threads gives them: a build that compiles
// them without OpenMP runs every at::parallel_for of theirs on one thread.
#include "../test_util.h"
#include "sbtrec/common/parallel.h"

TEST(Parallel, LibraryKernelsForkTheRequestedThreads) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  EXPECT_EQ(sbtrec::library_parallel_threads(), 2);
  torch::set_num_threads(1);
  EXPECT_EQ(sbtrec::library_parallel_threads(), 1);
  torch::set_num_threads(threads);
}
