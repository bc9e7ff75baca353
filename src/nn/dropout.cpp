// Counter-based dropout (see dropout.h).
#include "sbtrec/nn/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/cpu_clones.h"

namespace sbtrec::nn {
namespace {

// Mask values for pairs [begin, end): pair i fills m[2i] and m[2i + 1] from one hash. Integer-only,
// so the AVX-512 clone (64-bit multiplies in vector registers, ~14x faster here) gives the same bits.
SBTREC_CPU_CLONES
void fill_pairs(float* m, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t r = splitmix64(seed ^ (uint64_t)i * 0xd1b54a32d192ed03ull);
    m[2 * i] = (r & 0xffffffffull) >= threshold ? scale : 0.f;
    m[2 * i + 1] = (r >> 32) >= threshold ? scale : 0.f;
  }
}

uint64_t next_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

}  // namespace

torch::Tensor dropout_mask(at::IntArrayRef sizes, double p, const torch::TensorOptions& options) {
  TORCH_CHECK(p >= 0 && p < 1, "dropout probability must be in [0, 1), got ", p);
  if (options.device().type() != torch::kCPU)  // the device's own generator, as torch::dropout
    return torch::empty(sizes, options).bernoulli_(1 - p).div_(1 - p);
  auto mask = torch::empty(sizes, options.dtype(torch::kFloat32).device(torch::kCPU));
  float* m = mask.data_ptr<float>();
  const int64_t n = mask.numel();
  const uint64_t seed = next_seed();
  // Each 64-bit hash gives two 32-bit uniforms; an element is dropped when its uniform < p * 2^32.
  const uint64_t threshold = (uint64_t)(p * 4294967296.0);
  const float scale = (float)(1.0 / (1.0 - p));
  at::parallel_for(0, n / 2, 4096, [&](int64_t begin, int64_t end) { fill_pairs(m, begin, end, seed, threshold, scale); });
  if (n % 2) {  // the last element takes the low half of its pair's hash
    const uint64_t r = splitmix64(seed ^ (uint64_t)(n / 2) * 0xd1b54a32d192ed03ull);
    m[n - 1] = (r & 0xffffffffull) >= threshold ? scale : 0.f;
  }
  return options.dtype() == torch::kFloat32 ? mask : mask.to(options.dtype());
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, true);
  return x * dropout_mask(x.sizes(), p, x.options());
}

}  // namespace sbtrec::nn
