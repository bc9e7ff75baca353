// RAM-Aligner: Linear-GELU-Linear (erf GELU) and the single-Linear ablation against the same
// expressions written with torch ops, LLaRA's parameter names, output dtype, and gradient flow.
#include "../test_util.h"
#include "sbtrec/aligner/ram_aligner.h"

using namespace sbtrec;
using namespace sbtrec::aligner;

TEST(RamAligner, MlpIsLinearGeluLinearWithLlarasNames) {
  torch::manual_seed(3);
  RamAligner a(64, 96, AlignerOptions{AlignerType::kMlp, 40});
  std::set<std::string> names;
  for (const auto& p : a->named_parameters()) names.insert(p.key());
  EXPECT_EQ(names, (std::set<std::string>{"mlp_proj.0.weight", "mlp_proj.0.bias", "mlp_proj.2.weight", "mlp_proj.2.bias"}));
  auto params = a->named_parameters();
  EXPECT_EQ(params["mlp_proj.0.weight"].sizes(), (std::vector<int64_t>{40, 64}));
  EXPECT_EQ(params["mlp_proj.2.weight"].sizes(), (std::vector<int64_t>{96, 40}));
  auto e = torch::randn({5, 64}, torch::requires_grad());
  auto h = torch::linear(e, params["mlp_proj.0.weight"], params["mlp_proj.0.bias"]);
  auto want = torch::linear(0.5 * h * (1 + torch::erf(h / std::sqrt(2.0))), params["mlp_proj.2.weight"], params["mlp_proj.2.bias"]);
  auto got = a->forward(e);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-6);
  // gradients reach the input (the codebooks behind it) and both layers
  got.sum().backward();
  EXPECT_GT(e.grad().abs().sum().item<double>(), 0);
  for (const auto& p : a->parameters()) EXPECT_GT(p.grad().abs().sum().item<double>(), 0);
  // bf16 LLM: computed in float32, returned in the embedding dtype
  EXPECT_EQ(a->forward(e.detach(), torch::kBFloat16).scalar_type(), torch::kBFloat16);
  // hidden_size 0 = the output width (LLaRA: 64 -> 4096 -> 4096)
  RamAligner d(64, 96);
  EXPECT_EQ(d->named_parameters()["mlp_proj.0.weight"].size(0), 96);
}

TEST(RamAligner, LinearAblationIsOneLinear) {
  RamAligner a(8, 12, AlignerOptions{AlignerType::kLinear, 0});
  EXPECT_EQ(a->parameters().size(), 2u);
  auto e = torch::randn({3, 8});
  auto p = a->named_parameters();
  EXPECT_LT((a->forward(e) - torch::linear(e, p["mlp_proj.0.weight"], p["mlp_proj.0.bias"])).abs().max().item<double>(), 1e-6);
  EXPECT_THROW(a->forward(torch::randn({3, 9})), c10::Error);
}
