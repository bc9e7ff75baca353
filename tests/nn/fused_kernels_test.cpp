// The fused CPU kernels (RMSNorm, rotary embedding, few-row linear, decode attention) against the
// tensor expressions they replace: values and gradients, on sizes that are not multiples of the vector width.
#include "../test_util.h"
#include "sbtrec/nn/decode_attention.h"
#include "sbtrec/nn/few_row_linear.h"
#include "sbtrec/nn/rms_norm.h"
#include "sbtrec/nn/rotary.h"

using namespace sbtrec;

namespace {

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

torch::Tensor rotate_half(const torch::Tensor& x) {
  auto h = x.chunk(2, -1);
  return torch::cat({-h[1], h[0]}, -1);
}

}  // namespace

TEST(FusedKernels, RmsNormEqualsHuggingFaceExpression) {
  for (int64_t D : {72, 512, 13}) {
    torch::manual_seed(D);
    auto x = (torch::randn({3, 7, D}) * 3).requires_grad_(true);
    auto w = torch::rand({D}) + 0.5;
    auto g = torch::randn({3, 7, D});
    auto y = nn::rms_norm(x, w, 1e-5);
    y.backward(g);
    auto x2 = x.detach().clone().requires_grad_(true);
    auto want = w * (x2 * torch::rsqrt(x2.pow(2).mean(-1, true) + 1e-5));
    want.backward(g);
    EXPECT_EQ(maxdiff(y, want), 0.0) << D;  // bit-identical forward
    EXPECT_LT(maxdiff(x.grad(), x2.grad()), 2e-5) << D;
  }
}

TEST(FusedKernels, RotaryEqualsRotateHalfExpression) {
  torch::manual_seed(5);
  auto x = torch::randn({2, 5, 3, 24}).requires_grad_(true);  // [B, T, H, E]
  auto angle = torch::rand({2, 5, 12}) * 6;
  auto emb = torch::cat({angle, angle}, -1);                   // [B, T, E]
  auto cos = emb.cos(), sin = emb.sin();
  auto g = torch::randn({2, 5, 3, 24});
  auto y = nn::apply_rotary(x, cos, sin);
  y.backward(g);
  auto x2 = x.detach().clone().requires_grad_(true);
  auto want = x2 * cos.unsqueeze(2) + rotate_half(x2) * sin.unsqueeze(2);
  want.backward(g);
  EXPECT_EQ(maxdiff(y, want), 0.0);
  EXPECT_LT(maxdiff(x.grad(), x2.grad()), 1e-6);
  // A non-contiguous gradient (as attention's backward hands over) is handled.
  auto x3 = x.detach().clone().requires_grad_(true);
  nn::apply_rotary(x3, cos, sin).backward(g.transpose(1, 2).contiguous().transpose(1, 2));
  EXPECT_LT(maxdiff(x3.grad(), x2.grad()), 1e-6);
}

TEST(FusedKernels, FewRowLinearEqualsLinearAndAppliesOnlyWhereMeant) {
  torch::NoGradGuard ng;
  const int threads = torch::get_num_threads();
  for (int t : {1, 2}) {
    torch::set_num_threads(t);
    for (int64_t I : {512, 77, 5}) {
      torch::manual_seed(I);
      auto w = torch::randn({301, I});
      for (int64_t M : {1, 3, 8}) {
        auto x = torch::randn({M, 1, I});
        ASSERT_TRUE(nn::few_row_linear_applies(x, w));
        auto got = nn::few_row_linear(x, w);
        auto want = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64));
        ASSERT_EQ(got.sizes(), (std::vector<int64_t>{M, 1, 301}));
        EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-6 * std::sqrt((double)I) * 4) << I << " " << M;
      }
    }
  }
  torch::set_num_threads(threads);
  auto w = torch::randn({16, 32});
  EXPECT_FALSE(nn::few_row_linear_applies(torch::randn({9, 32}), w));                         // too many rows
  EXPECT_FALSE(nn::few_row_linear_applies(torch::randn({1, 32}).to(torch::kBFloat16), w));   // dtype
  EXPECT_FALSE(nn::few_row_linear_applies(torch::randn({1, 32}), w.t().contiguous().t()));   // layout
  torch::AutoGradMode grad(true);
  EXPECT_FALSE(nn::few_row_linear_applies(torch::randn({1, 32}, torch::requires_grad()), w));  // training
}

TEST(FusedKernels, DecodeAttentionEqualsSdpaWithCacheLayoutGqaAndPadding) {
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  const int64_t B = 3, H = 6, Hkv = 2, S = 37, E = 24, cap = 50;
  auto q = torch::randn({B, 1, H, E}).transpose(1, 2);                    // [B, H, 1, E], strided as in the model
  auto kbuf = torch::randn({B, Hkv, cap, E}), vbuf = torch::randn({B, Hkv, cap, E});
  auto k = kbuf.narrow(2, 0, S), v = vbuf.narrow(2, 0, S);                // [B, Hkv, S, E] views of a cache
  auto mask = torch::ones({B, S}, torch::kBool);
  mask.index_put_({1, torch::indexing::Slice(0, 5)}, false);               // left padding in row 1
  auto m4 = mask.view({B, 1, 1, S});
  const double scale = 1.0 / std::sqrt((double)E);
  for (bool masked : {false, true}) {
    auto m = masked ? m4 : torch::Tensor();
    ASSERT_TRUE(nn::decode_attention_applies(q, k, v, m));
    auto got = nn::decode_attention(q, k, v, m, scale);
    std::optional<torch::Tensor> om;
    if (masked) om = m;
    auto want = at::scaled_dot_product_attention(q, k, v, om, 0.0, false, scale, /*enable_gqa=*/true);
    EXPECT_LT(maxdiff(got, want), 1e-5) << masked;
  }
  EXPECT_FALSE(nn::decode_attention_applies(torch::randn({B, H, 2, E}), k, v, {}));  // more than one query
  EXPECT_FALSE(nn::decode_attention_applies(q.to(torch::kBFloat16), k, v, {}));
}
