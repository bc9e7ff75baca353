// The Llama stack on an accelerator against the same computation on the CPU: logits and greedy ids,
// LoRA gradients through the chunked loss, bf16, activation checkpointing with dropout (the device's
// RNG must be replayed), dropout masks. Label `gpu`; skipped without CUDA. SBTREC_TEST_DEVICE=cpu runs
// the same checks CPU-against-CPU, which is how the test code itself is exercised on CPU machines.
#include <cstdlib>

#include "../test_util.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/llama.h"
#include "sbtrec/nn/dropout.h"

using namespace sbtrec;
using namespace sbtrec::llm;

namespace {

torch::Device device_under_test() {
  const char* e = std::getenv("SBTREC_TEST_DEVICE");
  return torch::Device(e && *e ? e : "cuda");
}

#define REQUIRE_DEVICE()                                                                               \
  const torch::Device dev = device_under_test();                                                     \
  if (dev.is_cuda() && !torch::cuda::is_available())                                                 \
  GTEST_SKIP() << "no CUDA device here (SBTREC_TEST_DEVICE=cpu runs these checks on the CPU)"

// Same random tiny Llama (peaked logits, no near-ties) on the CPU and on `dev`.
std::pair<LlamaForCausalLM, LlamaForCausalLM> twins(const torch::Device& dev, uint64_t seed) {
  auto make = [&]() {
    torch::manual_seed(seed);
    LlamaForCausalLM m(llama_tiny());
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.normal_(0, 0.3);
    for (auto& item : m->named_parameters())
      if (item.key().find("norm") != std::string::npos) item.value().uniform_(0.5, 1.5);
    return m;
  };
  auto cpu = make(), other = make();
  other->to(dev);
  return {cpu, other};
}

void add_lora_with_random_b(LlamaForCausalLMImpl& m, double dropout) {
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = dropout;
  torch::manual_seed(21);
  m.add_lora(o);
  torch::NoGradGuard ng;
  for (auto& l : m.lora_layers()) l->lora_B->weight.normal_(0, 0.1);
}

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach().to(torch::kCPU).to(torch::kFloat64) - b.detach().to(torch::kCPU).to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST(Device, LogitsWithPaddingAndGreedyIdsMatchTheCpu) {
  REQUIRE_DEVICE();
  auto [cpu, other] = twins(dev, 1);
  cpu->eval();
  other->eval();
  torch::NoGradGuard ng;
  auto ids = torch::randint(3, 128, {2, 9}, torch::kInt64);
  auto mask = torch::ones({2, 9}, torch::kInt64);
  mask.index_put_({1, torch::indexing::Slice(0, 3)}, 0);  // row 1 left-padded
  ForwardInputs a, b;
  a.input_ids = ids;
  a.attention_mask = mask;
  b.input_ids = ids.to(dev);
  b.attention_mask = mask.to(dev);
  EXPECT_LT(maxdiff(cpu->forward(a).masked_select(mask.unsqueeze(-1).to(torch::kBool)),
                    other->forward(b).to(torch::kCPU).masked_select(mask.unsqueeze(-1).to(torch::kBool))),
            1e-4);
  GenerationOptions g;
  g.max_new_tokens = 12;
  EXPECT_TRUE(torch::equal(generate(*cpu, ids, mask, g), generate(*other, ids.to(dev), mask.to(dev), g).to(torch::kCPU)));
}

TEST(Device, LoraGradientsThroughTheChunkedLossMatchTheCpu) {
  REQUIRE_DEVICE();
  auto [cpu, other] = twins(dev, 2);
  add_lora_with_random_b(*cpu, 0.0);
  add_lora_with_random_b(*other, 0.0);
  cpu->train();
  other->train();
  auto ids = torch::randint(3, 128, {3, 17}, torch::kInt64);
  auto labels = ids.clone();
  labels.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, 5)}, -100);  // prompt positions
  ForwardInputs a, b;
  a.input_ids = ids;
  b.input_ids = ids.to(dev);
  nn::LinearCrossEntropyOptions o;
  o.chunk_rows = 7;
  auto la = cpu->loss(a, labels, o), lb = other->loss(b, labels.to(dev), o);
  EXPECT_NEAR(la.item<double>(), lb.item<double>(), 1e-5);
  // The full-logits loss on the device agrees with the chunked one.
  EXPECT_NEAR(LlamaForCausalLMImpl::causal_lm_loss(other->forward(b), labels.to(dev)).item<double>(), lb.item<double>(), 1e-5);
  la.backward();
  lb.backward();
  auto ga = cpu->lora_layers(), gb = other->lora_layers();
  ASSERT_EQ(ga.size(), gb.size());
  for (size_t i = 0; i < ga.size(); ++i) {
    for (auto [x, y] : {std::pair{ga[i]->lora_A->weight, gb[i]->lora_A->weight}, std::pair{ga[i]->lora_B->weight, gb[i]->lora_B->weight}}) {
      const double scale = std::max(1.0, x.grad().abs().max().item<double>());
      EXPECT_LT(maxdiff(x.grad(), y.grad()), 1e-4 * scale) << i;
    }
  }
}

TEST(Device, Bfloat16BaseWithFloat32AdaptersTrains) {
  REQUIRE_DEVICE();
  auto [cpu, other] = twins(dev, 3);
  other->to(torch::kBFloat16);
  add_lora_with_random_b(*cpu, 0.0);
  add_lora_with_random_b(*other, 0.0);
  EXPECT_EQ(other->lora_layers()[0]->lora_A->weight.scalar_type(), torch::kFloat32);
  auto ids = torch::randint(3, 128, {2, 12}, torch::kInt64);
  ForwardInputs a, b;
  a.input_ids = ids;
  b.input_ids = ids.to(dev);
  auto la = cpu->loss(a, ids), lb = other->loss(b, ids.to(dev));
  EXPECT_EQ(lb.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(lb.item<double>(), la.item<double>(), 0.05 * la.item<double>());
  lb.backward();
  for (auto& l : other->lora_layers()) EXPECT_TRUE(torch::isfinite(l->lora_A->weight.grad()).all().item<bool>());
}

TEST(Device, CheckpointingReplaysTheDevicesDropoutMasks) {
  REQUIRE_DEVICE();
  std::vector<torch::Tensor> grads[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    auto m = twins(dev, 4).second;
    add_lora_with_random_b(*m, 0.2);
    m->train();
    m->set_gradient_checkpointing(ckpt == 1);
    auto ids = torch::randint(3, 128, {2, 10}, torch::TensorOptions().dtype(torch::kInt64)).to(dev);
    torch::manual_seed(5);  // seeds every device's generator: the same masks in both runs
    ForwardInputs in;
    in.input_ids = ids;
    m->loss(in, ids).backward();
    for (auto& l : m->lora_layers()) grads[ckpt].push_back(l->lora_A->weight.grad().to(torch::kCPU));
  }
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LT(maxdiff(grads[0][i], grads[1][i]), 1e-5) << i;
}

TEST(Device, DropoutMaskKeepRateAndScale) {
  REQUIRE_DEVICE();
  auto m = nn::dropout_mask({512, 256}, 0.25, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
  EXPECT_EQ(m.device(), dev);
  auto kept = m.ne(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(kept, 0.75, 0.01);
  EXPECT_NEAR(m.max().item<double>(), 1.0 / 0.75, 1e-6);
}
