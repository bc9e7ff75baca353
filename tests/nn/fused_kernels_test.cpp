// The fused CPU kernels (RMSNorm, rotary embedding, few-row linear, decode attention) against the
// tensor expressions they replace: values and gradients, on sizes that are not multiples of the vector width.
#include <c10/util/Half.h>

#include <cstring>

#include "../test_util.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/nn/decode_attention.h"
#include "sbtrec/nn/few_row_linear.h"
#include "sbtrec/nn/onednn_linear.h"
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

namespace {

// Random GGUF blocks of `type` for a [O, I] weight, with finite f16 scales (and mins) of a Llama
// projection's size; returns the blocks (uint8 [O, row bytes]) and their float32 dequantization.
std::pair<torch::Tensor, torch::Tensor> random_blocks(gguf::TensorType type, int64_t O, int64_t I) {
  const int64_t bytes = gguf::tensor_type_traits((uint32_t)type)->block_bytes, nb = I / 32;
  auto blocks = torch::randint(0, 256, {O, nb * bytes}, torch::kInt32).to(torch::kUInt8);  // [O, row bytes]
  uint8_t* p = blocks.data_ptr<uint8_t>();
  const int halves = type == gguf::TensorType::kQ4_1 ? 2 : 1;  // d (and m) lead each block
  for (int64_t b = 0; b < O * nb; ++b)
    for (int h = 0; h < halves; ++h) {
      const c10::Half v((float)(torch::rand({1}).item<double>() * 0.02 - 0.01));
      std::memcpy(p + b * bytes + 2 * h, &v.x, 2);
    }
  auto w = torch::empty({O, I});  // [O, I]
  gguf::dequantize(type, p, O * I, w.data_ptr<float>());
  return {blocks, w};
}

}  // namespace

TEST(FusedKernels, OneDnnLinearEqualsLinearAndAppliesOnlyWithoutGradient) {
  if (!nn::onednn_linear_available()) GTEST_SKIP() << "this LibTorch has no oneDNN (mkldnn::_linear_pointwise)";
  torch::manual_seed(3);
  auto w = torch::randn({48, 64});         // [O, I]
  auto x = torch::randn({3, 37, 64});      // [B, T, I]: past the few-row kernel
  torch::Tensor got;
  {
    torch::NoGradGuard ng;
    ASSERT_TRUE(nn::onednn_linear_applies(x, w));
    got = nn::onednn_linear(x, w);
  }
  auto want = torch::linear(x, w);  // [3, 37, 48]
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-4);
  // bf16 in, bf16 out: the products of torch::linear on the same bf16 tensors.
  auto xb = x.to(torch::kBFloat16), wb = w.to(torch::kBFloat16);
  auto gb = nn::onednn_linear(xb, wb);
  EXPECT_EQ(gb.scalar_type(), torch::kBFloat16);
  EXPECT_LT((gb.to(torch::kFloat32) - torch::linear(xb, wb).to(torch::kFloat32)).abs().max().item<float>(), 0.1);
  // Non-contiguous input, one row, no rows.
  auto xt = torch::randn({64, 5}).t();
  EXPECT_LT((nn::onednn_linear(xt, w) - torch::linear(xt, w)).abs().max().item<float>(), 1e-4);
  EXPECT_EQ(nn::onednn_linear(torch::zeros({0, 64}), w).sizes(), (std::vector<int64_t>{0, 48}));
  // Refused: a weight that wants gradients (with GradMode on), mixed dtypes, a width mismatch.
  auto wg = w.clone().requires_grad_(true);
  EXPECT_FALSE(nn::onednn_linear_applies(x, wg));
  EXPECT_THROW(nn::onednn_linear(x, wg), c10::Error);
  EXPECT_FALSE(nn::onednn_linear_applies(xb, w));
  EXPECT_FALSE(nn::onednn_linear_applies(torch::randn({4, 63}), w));
}

TEST(FusedKernels, FrozenLinearGivesLinearsInputGradient) {
  if (!nn::onednn_linear_available()) GTEST_SKIP() << "this LibTorch has no oneDNN (mkldnn::_linear_pointwise)";
  torch::manual_seed(4);
  auto w = torch::randn({40, 24});                       // [O, I] frozen
  auto x = torch::randn({2, 11, 24}, torch::requires_grad());  // [B, T, I]
  auto g = torch::randn({2, 11, 40});                    // upstream gradient
  auto y = nn::frozen_linear(x, w);
  y.backward(g);
  auto got = x.grad().clone();
  x.mutable_grad().reset();
  auto y_ref = torch::linear(x, w);
  y_ref.backward(g);
  EXPECT_LT((y - y_ref).abs().max().item<float>(), 1e-4);
  EXPECT_LT((got - x.grad()).abs().max().item<float>(), 1e-4);
  EXPECT_THROW(nn::frozen_linear(x, w.clone().requires_grad_(true)), c10::Error);
}

TEST(FusedKernels, PackedFewRowLinearEqualsLinearOnTheDequantizedWeight) {
  torch::NoGradGuard ng;
  const int threads = torch::get_num_threads();
  // Every kernel this CPU runs; the vector kernels it lacks are named, not silently passed.
  std::vector<nn::PackedKernel> kernels{nn::PackedKernel::kBest, nn::PackedKernel::kPortable};
  for (auto k : {nn::PackedKernel::kAvx512, nn::PackedKernel::kAvx2}) {
    if (nn::packed_kernel_available(k)) {
      kernels.push_back(k);
      continue;
    }
    std::cout << "[ note ] this CPU lacks packed kernel " << (int)k << " (1 AVX-512, 2 AVX2): not compared\n";
    auto [blocks, w] = random_blocks(gguf::TensorType::kQ8_0, 4, 32);
    EXPECT_THROW(nn::few_row_linear(torch::zeros({1, 32}), nn::pack_weight(gguf::TensorType::kQ8_0, blocks, w), k), c10::Error);
  }
  for (auto type : {gguf::TensorType::kQ8_0, gguf::TensorType::kQ4_0, gguf::TensorType::kQ4_1}) {
    for (int t : {1, 2}) {
      torch::set_num_threads(t);
      for (int64_t I : {576, 32}) {
        torch::manual_seed(I + (int)type);
        auto [blocks, w] = random_blocks(type, 301, I);
        const auto packed = nn::pack_weight(type, blocks, w);
        ASSERT_TRUE(packed.mirrors(w));
        for (int64_t M : {1, 2, 3, 4, 8, 11}) {  // 11: two slabs of rows
          auto x = torch::randn({M, 1, I});
          auto want = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64));  // [M, 1, 301]
          // float32 rounding is relative to the sum of |x_i w_i|, not to the (cancelling) sum itself
          const double scale = torch::linear(x.abs().to(torch::kFloat64), w.abs().to(torch::kFloat64)).max().item<double>();
          for (auto kernel : kernels) {
            auto got = nn::few_row_linear(x, packed, kernel);
            ASSERT_EQ(got.sizes(), (std::vector<int64_t>{M, 1, 301}));
            EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5 * scale)
                << gguf::tensor_type_traits((uint32_t)type)->name << " I " << I << " M " << M << " kernel " << (int)kernel;
          }
        }
      }
    }
  }
  torch::set_num_threads(threads);
}

TEST(FusedKernels, PackedWeightStopsMirroringAReplacedOrModifiedWeight) {
  torch::NoGradGuard ng;
  auto [blocks, w] = random_blocks(gguf::TensorType::kQ8_0, 16, 64);
  const auto packed = nn::pack_weight(gguf::TensorType::kQ8_0, blocks, w);
  EXPECT_TRUE(packed.mirrors(w));
  EXPECT_FALSE(packed.mirrors(w.clone()));  // another tensor with the same values (a replaced weight)
  w.add_(1.0);                              // changed in place (a merged LoRA)
  EXPECT_FALSE(packed.mirrors(w));
  EXPECT_THROW(nn::pack_weight(gguf::TensorType::kF16, blocks, w), std::invalid_argument);       // not packable
  EXPECT_THROW(nn::pack_weight(gguf::TensorType::kQ4_1, blocks, w), std::invalid_argument);      // row bytes disagree
  EXPECT_THROW(nn::pack_weight(gguf::TensorType::kQ8_0, blocks, w.narrow(0, 0, 8)), std::invalid_argument);  // rows
}

TEST(FusedKernels, DecodeAttentionEqualsSdpaWithCacheLayoutGqaAndPadding) {
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  const int threads = torch::get_num_threads();
  const int64_t B = 3, S = 37, E = 24, cap = 50;
  // (H, Hkv): 3 query heads per key/value head, 17 (more than one pass of the kernel's group), none shared.
  for (auto [H, Hkv] : std::vector<std::pair<int64_t, int64_t>>{{6, 2}, {34, 2}, {4, 4}})
    for (int t : {1, 2}) {
      torch::set_num_threads(t);
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
        EXPECT_LT(maxdiff(got, want), 1e-5) << "H " << H << " Hkv " << Hkv << " threads " << t << " masked " << masked;
      }
    }
  torch::set_num_threads(threads);
  const int64_t H = 6, Hkv = 2;
  auto q = torch::randn({B, H, 1, E});
  auto k = torch::randn({B, Hkv, S, E}), v = torch::randn({B, Hkv, S, E});
  EXPECT_FALSE(nn::decode_attention_applies(torch::randn({B, H, 2, E}), k, v, {}));  // more than one query
  EXPECT_FALSE(nn::decode_attention_applies(q.to(torch::kBFloat16), k, v, {}));
}
