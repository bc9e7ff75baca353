// Dot product written so GCC vectorises it inside the SBTREC_CPU_CLONES functions that inline it:
// Lanes independent partial sums, folded pairwise (a left-to-right fold would be Lanes dependent
// scalar adds, as slow as streaming a 512-float row). Private to src/nn.
#pragma once
#include <cstdint>

namespace sbtrec::nn {

template <int Lanes>
__attribute__((always_inline)) inline float dot(const float* a, const float* b, int64_t n) {
  float acc[Lanes] = {0};
  int64_t i = 0;
  for (; i + Lanes <= n; i += Lanes)
    for (int l = 0; l < Lanes; ++l) acc[l] += a[i + l] * b[i + l];
  for (int width = Lanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  float s = acc[0];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace sbtrec::nn
