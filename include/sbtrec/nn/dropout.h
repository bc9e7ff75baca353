// Dropout whose CPU mask comes from a counter-based hash (splitmix64) instead of torch's per-element
// Bernoulli sampler, which costs ~0.5 ms per [256, 10, 64] mask and dominated small encoder steps.
// One 64-bit seed per call is drawn from torch's default CPU generator, so results stay reproducible
// under torch::manual_seed and do not depend on the thread count. CUDA tensors use torch::dropout.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// Inverted dropout: keeps each element with probability 1 - p and scales kept ones by 1 / (1 - p).
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// The multiplicative mask (values 0 or 1 / (1 - p)) of `sizes` in `options`' dtype and device (other
// devices than the CPU draw it with their own generator).
torch::Tensor dropout_mask(at::IntArrayRef sizes, double p, const torch::TensorOptions& options);

}  // namespace sbtrec::nn
