// FusedAdam equals torch::optim::Adam (the stock LibTorch step) step for step, with and without
// weight decay, and keeps state the stock optimizer can read.
#include "sbtrec/optim/fused_adam.h"

#include "../test_util.h"

using namespace sbtrec;

namespace {
void run_both(double weight_decay) {
  torch::manual_seed(0);
  auto a = torch::randn({300, 17}, torch::requires_grad());
  auto b = a.detach().clone().requires_grad_(true);
  const auto initial = a.detach().clone();
  auto opts = torch::optim::AdamOptions(1e-2).weight_decay(weight_decay);
  optim::FusedAdam fused({a}, opts);
  torch::optim::Adam stock({b}, opts);
  for (int i = 0; i < 50; ++i) {
    auto target = torch::randn({300, 17});
    fused.zero_grad();
    stock.zero_grad();
    (a - target).pow(2).sum().backward();
    (b - target).pow(2).sum().backward();
    fused.step();
    stock.step();
  }
  // Equal up to float32 rounding (vectorised kernels may contract to FMA): after 50 steps the
  // parameters, of size ~1, agree to ~1e-6.
  EXPECT_LT((a - b).abs().max().item<double>(), 2e-5);
  // The steps moved the parameters far more than the tolerance, so the equality above is not
  // trivially met by two optimizers that did nothing.
  EXPECT_GT((a - initial).abs().max().item<double>(), 0.1);
  auto& s = static_cast<torch::optim::AdamParamState&>(*fused.state().at(a.unsafeGetTensorImpl()));
  EXPECT_EQ(s.step(), 50);
}
}  // namespace

TEST(FusedAdam, MatchesStockAdam) { run_both(0.0); }
TEST(FusedAdam, MatchesStockAdamWithWeightDecay) { run_both(0.01); }

TEST(FusedAdam, NonFloatParametersTakeTheStockPath) {
  auto a = torch::randn({8}, torch::dtype(torch::kFloat64).requires_grad(true));
  auto b = a.detach().clone().requires_grad_(true);
  optim::FusedAdam fused({a}, torch::optim::AdamOptions(0.1));
  torch::optim::Adam stock({b}, torch::optim::AdamOptions(0.1));
  for (int i = 0; i < 5; ++i) {
    fused.zero_grad();
    stock.zero_grad();
    a.pow(3).sum().backward();
    b.pow(3).sum().backward();
    fused.step();
    stock.step();
  }
  EXPECT_TRUE(torch::allclose(a, b));
}
