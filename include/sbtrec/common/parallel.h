// How many threads the library's own kernels get from at::parallel_for. ATen's parallel_for is an inline
// template: it forks only where the calling code is compiled with OpenMP, so this is measured inside
// the library (a build without -fopenmp gives 1 whatever torch::set_num_threads says).
#pragma once

namespace sbtrec {

// The number of distinct threads one at::parallel_for over many tasks ran on, from library code.
int library_parallel_threads();

}  // namespace sbtrec
