// Counter-based dropout: keep rate, scaling, reproducibility under torch::manual_seed, and a mask
// that does not depend on the number of threads.
#include "sbtrec/nn/dropout.h"

#include "../test_util.h"
#include "sbtrec/common/counter_rng.h"
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

using namespace sbtrec;

TEST(Dropout, KeepRateScaleAndIdentityInEval) {
  auto x = torch::ones({200, 10, 64});
  torch::manual_seed(0);
  auto y = nn::dropout(x, 0.1, true);
  const double kept = y.ne(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(kept, 0.9, 0.005);  // 128k elements: 5 sigma is ~0.004
  EXPECT_TRUE(torch::allclose(y.masked_select(y.ne(0)), torch::full({1}, 1.0f / 0.9f)));
  EXPECT_TRUE(torch::equal(nn::dropout(x, 0.1, false), x));
  EXPECT_TRUE(torch::equal(nn::dropout(x, 0.0, true), x));
  // Neighbouring elements are not correlated (both halves of each hash are used).
  auto m = y.ne(0).to(torch::kFloat64).view({-1, 2});
  const double both_dropped = (1 - m.select(1, 0)).mul(1 - m.select(1, 1)).mean().item<double>();
  EXPECT_NEAR(both_dropped, 0.01, 0.002);
}

TEST(Dropout, ReproducibleUnderSeedAndIndependentOfThreads) {
  const int threads = torch::get_num_threads();
  torch::manual_seed(42);
  auto a = nn::dropout_mask({4096, 33}, 0.3, torch::kFloat32);
  auto b = nn::dropout_mask({4096, 33}, 0.3, torch::kFloat32);
  EXPECT_FALSE(torch::equal(a, b));  // a new seed per call
  torch::set_num_threads(1);
  torch::manual_seed(42);
  auto c = nn::dropout_mask({4096, 33}, 0.3, torch::kFloat32);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(a, c));
}

TEST(Dropout, GradientFlowsThroughKeptElements) {
  auto x = torch::randn({64, 32}, torch::requires_grad());
  torch::manual_seed(1);
  auto y = nn::dropout(x, 0.5, true);
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), y.detach().ne(0).to(torch::kFloat32) * 2.0));
}

// The mask stream is pinned (trained encoders stay reproducible across versions): element k uses
// half k % 2 of splitmix64(seed ^ (k / 2) * C), seed = the next random64 of the default generator.
// This also checks the vectorised clone of the fill loop against the plain formula, odd sizes too.
// splitmix64 itself is pinned to its reference outputs in tests/common/counter_rng_test.cpp.
TEST(Dropout, MaskFollowsTheDocumentedHashStream) {
  torch::manual_seed(7);
  auto m = nn::dropout_mask({3, 1001}, 0.25, torch::kFloat32).reshape({-1});
  torch::manual_seed(7);
  uint64_t seed;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  const uint64_t threshold = (uint64_t)(0.25 * 4294967296.0);
  auto a = m.accessor<float, 1>();
  int64_t mismatches = 0;
  for (int64_t k = 0; k < m.numel(); ++k) {
    const uint64_t r = splitmix64(seed ^ (uint64_t)(k / 2) * 0xd1b54a32d192ed03ull);
    const uint64_t u = k % 2 ? r >> 32 : r & 0xffffffffull;
    const float want = u >= threshold ? 1.0f / 0.75f : 0.0f;
    mismatches += a[k] != want;
  }
  EXPECT_EQ(mismatches, 0);
}
