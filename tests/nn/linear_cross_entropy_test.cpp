// nn::linear_cross_entropy against cross_entropy(linear(h, W)) computed by torch with full logits.
#include "../test_util.h"
#include "sbtrec/nn/linear_cross_entropy.h"

using namespace sbtrec;

namespace {

struct Case {
  torch::Tensor h, w, y;
};

// 13 rows, 4 of them ignored; width 6; 37 classes.
Case make_case(torch::ScalarType dtype) {
  torch::manual_seed(3);
  Case c;
  c.h = torch::randn({13, 6}).to(dtype).requires_grad_(true);
  c.w = torch::randn({37, 6}).to(dtype).requires_grad_(true);
  c.y = torch::randint(0, 37, {13}, torch::kInt64);
  c.y.index_put_({torch::tensor({0, 4, 5, 12})}, -100);
  return c;
}

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) { return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>(); }

}  // namespace

TEST(LinearCrossEntropy, LossAndBothGradientsEqualFullLogitsForEveryChunkSize) {
  auto ref = make_case(torch::kFloat32);
  auto want = torch::nn::functional::cross_entropy(torch::mm(ref.h, ref.w.t()), ref.y,
                                                   torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  (want * 3).backward();  // an upstream gradient other than 1
  for (int64_t chunk : {1, 3, 7, 9, 1000}) {
    auto c = make_case(torch::kFloat32);
    nn::LinearCrossEntropyOptions o;
    o.chunk_rows = chunk;
    auto got = nn::linear_cross_entropy(c.h, c.w, c.y, o);
    EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-6) << chunk;
    (got * 3).backward();
    EXPECT_LT(maxdiff(c.h.grad(), ref.h.grad()), 1e-6) << chunk;
    EXPECT_LT(maxdiff(c.w.grad(), ref.w.grad()), 1e-6) << chunk;
    EXPECT_EQ(c.h.grad().index({0}).abs().sum().item<double>(), 0.0) << "ignored rows get no gradient";
  }
}

TEST(LinearCrossEntropy, FrozenWeightGetsNoGradientAndNoGradModeWorks) {
  auto c = make_case(torch::kFloat32);
  c.w = c.w.detach();
  auto loss = nn::linear_cross_entropy(c.h, c.w, c.y);
  EXPECT_TRUE(loss.requires_grad());
  loss.backward();
  EXPECT_TRUE(c.h.grad().defined());
  torch::NoGradGuard ng;
  auto again = nn::linear_cross_entropy(c.h, c.w, c.y);
  EXPECT_FALSE(again.requires_grad());
  EXPECT_NEAR(again.item<double>(), loss.item<double>(), 1e-7);
}

TEST(LinearCrossEntropy, Bfloat16FollowsTorchWithinRounding) {
  auto c = make_case(torch::kBFloat16);
  auto want = torch::nn::functional::cross_entropy(torch::mm(c.h, c.w.t()).to(torch::kFloat32), c.y,
                                                   torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  want.backward();
  auto gh = c.h.grad().clone(), gw = c.w.grad().clone();
  c.h.mutable_grad().reset();
  c.w.mutable_grad().reset();
  auto got = nn::linear_cross_entropy(c.h, c.w, c.y);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-5);
  got.backward();
  EXPECT_EQ(c.h.grad().scalar_type(), torch::kBFloat16);
  EXPECT_LT(maxdiff(c.h.grad(), gh), 2e-2 * gh.abs().max().item<double>());
  EXPECT_LT(maxdiff(c.w.grad(), gw), 2e-2 * gw.abs().max().item<double>());
}

TEST(LinearCrossEntropy, AllIgnoredIsNaNAndBadLabelsAreErrors) {
  auto c = make_case(torch::kFloat32);
  EXPECT_TRUE(std::isnan(nn::linear_cross_entropy(c.h, c.w, torch::full({13}, -100, torch::kInt64)).item<double>()));
  auto bad = c.y.clone();
  bad[1] = 37;
  EXPECT_THROW(
      {
        try {
          nn::linear_cross_entropy(c.h, c.w, bad);
        } catch (const c10::Error& e) {
          EXPECT_NE(std::string(e.what()).find("label 37 is outside [0, 37)"), std::string::npos) << e.what();
          throw;
        }
      },
      c10::Error);
  EXPECT_THROW(nn::linear_cross_entropy(c.h, c.w, c.y.narrow(0, 0, 5)), c10::Error);
  EXPECT_THROW(nn::linear_cross_entropy(c.h, c.w.to(torch::kBFloat16), c.y), c10::Error);
}

TEST(LinearCrossEntropy, LossesWhoseProbabilityUnderflowsStayExact) {
  auto c = make_case(torch::kFloat32);
  auto h = (c.h.detach() * 40).requires_grad_(true);  // logit gaps of hundreds: p_y underflows float32
  auto want = torch::nn::functional::cross_entropy(torch::mm(h, c.w.detach().t()), c.y,
                                                   torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  ASSERT_GT(want.item<double>(), 100.0);
  auto got = nn::linear_cross_entropy(h, c.w.detach(), c.y);
  EXPECT_TRUE(std::isfinite(got.item<double>()));
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 1e-4 * want.item<double>());
}
