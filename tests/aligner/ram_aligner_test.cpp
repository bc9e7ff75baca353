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

TEST(RamAligner, UnitInputsAndTokensScaledToTheEmbeddingRows) {
  torch::manual_seed(3);
  AlignerOptions o;
  o.input_norm = InputNorm::kUnit;
  RamAligner a(8, 12, o, /*output_norm=*/3.5);
  auto e = torch::randn({4, 8});
  auto y = a->forward(e);  // [4, 12]
  // unit inputs: a vector and any positive multiple of it give one token
  EXPECT_LT((a->forward(e * 7.0) - y).abs().max().item<double>(), 1e-5);
  // every token has the requested length
  EXPECT_LT((y.norm(2, 1) - 3.5).abs().max().item<double>(), 1e-5);
  // the scaling is part of the graph: gradients still reach both layers
  y.pow(3).sum().backward();
  for (const auto& p : a->parameters()) EXPECT_GT(p.grad().abs().sum().item<double>(), 0);
  // the defaults leave the paper's aligner untouched
  torch::manual_seed(3);
  RamAligner plain(8, 12);
  auto w = plain->named_parameters();
  auto h = torch::gelu(torch::linear(e, w["mlp_proj.0.weight"], w["mlp_proj.0.bias"]));
  EXPECT_LT((plain->forward(e) - torch::linear(h, w["mlp_proj.2.weight"], w["mlp_proj.2.bias"])).abs().max().item<double>(), 1e-6);
}

TEST(RamAligner, PaletteTokensAreMixturesOfTheGivenEmbeddingRows) {
  torch::manual_seed(4);
  auto palette = torch::randn({6, 12});  // [M, E]
  AlignerOptions o;
  o.palette_size = 6;
  RamAligner a(8, 12, o, 0, palette);
  EXPECT_EQ(a->named_parameters()["mlp_proj.2.weight"].size(0), 6) << "the last layer scores the palette";
  EXPECT_EQ(a->named_parameters().size(), 4u) << "the palette is a buffer, not trained or saved";
  auto e = torch::randn({5, 8});
  auto y = a->forward(e);  // [5, 12]
  // y = w . palette with w on the simplex: recover w by least squares and check it
  auto w = std::get<0>(torch::linalg_lstsq(palette.t(), y.detach().t())).t();  // [5, 6]
  EXPECT_LT((torch::matmul(w, palette) - y).abs().max().item<double>(), 1e-4);
  EXPECT_GT(w.min().item<double>(), -1e-4);
  EXPECT_LT((w.sum(1) - 1).abs().max().item<double>(), 1e-4);
  // very sharp: each token is one palette row
  o.palette_sharpness = 1e4;
  RamAligner sharp(8, 12, o, 0, palette);
  auto ys = sharp->forward(e);  // [5, 12]
  auto d = torch::cdist(ys, palette).amin(1);
  EXPECT_LT(d.max().item<double>(), 1e-3);
  // gradients reach the aligner through the mixture
  y.pow(2).sum().backward();
  for (const auto& p : a->parameters()) EXPECT_GT(p.grad().abs().sum().item<double>(), 0);
  EXPECT_THROW(RamAligner(8, 12, o, 0, torch::randn({6, 11})), c10::Error);
}
