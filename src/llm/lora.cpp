// LoRA linear layer (see lora.h).
#include "sbtrec/llm/lora.h"

#include <cmath>

#include "sbtrec/nn/dropout.h"

namespace sbtrec::llm {

namespace {
thread_local int skip_init_depth = 0;
}

SkipInit::SkipInit() { ++skip_init_depth; }
SkipInit::~SkipInit() { --skip_init_depth; }
bool skip_init() { return skip_init_depth > 0; }

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}), /*requires_grad=*/false);
  if (!skip_init()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

void LoraLinearImpl::enable_lora(int64_t r, double alpha, double dropout) {
  TORCH_CHECK(r > 0, "LoRA rank must be positive");
  const auto opts = torch::nn::LinearOptions(weight.size(1), r).bias(false);
  lora_A = register_module("lora_A", torch::nn::Linear(opts));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, weight.size(0)).bias(false)));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
  if (weight.device() != torch::kCPU) {
    lora_A->to(weight.device());
    lora_B->to(weight.device());
  }
  scaling = alpha / (double)r;
  dropout_p = dropout;
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  auto y = torch::linear(x, weight);  // [N..., O]
  if (!has_lora() || merged_) return y;
  const auto adapter_dtype = lora_A->weight.scalar_type();
  auto h = nn::dropout(x.to(adapter_dtype), dropout_p, is_training());  // [N..., I]
  return y + (lora_B(lora_A(h)) * scaling).to(y.scalar_type());         // [N..., O]
}

void LoraLinearImpl::merge() {
  if (!has_lora() || merged_) return;
  torch::NoGradGuard no_grad;
  weight.add_((torch::mm(lora_B->weight, lora_A->weight) * scaling).to(weight.scalar_type()));  // [O, I]
  merged_ = true;
}

void LoraLinearImpl::unmerge() {
  if (!has_lora() || !merged_) return;
  torch::NoGradGuard no_grad;
  weight.sub_((torch::mm(lora_B->weight, lora_A->weight) * scaling).to(weight.scalar_type()));
  merged_ = false;
}

}  // namespace sbtrec::llm
