// RMSNorm as Hugging Face's LlamaRMSNorm computes it: statistics in float32,
// y = weight * (x * rsqrt(mean(x^2) + eps)). A float32 input with a frozen weight (LoRA training,
// inference) goes through one fused CPU kernel per direction (3 passes over x forward, 2 backward,
// instead of ~6 and ~10 tensor kernels); anything else through the composite tensor expression.
// Legend: N rows (any leading dims), D width.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// x [N..., D], weight [D] -> [N..., D] in x's dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace sbtrec::nn
