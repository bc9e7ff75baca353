// Rotary position embedding in Hugging Face's rotate-half convention:
// out = x * cos + rotate_half(x) * sin, rotate_half([x1, x2]) = [-x2, x1]. CPU float32 goes through
// one fused kernel per direction (same products and sum as the tensor expression, so the same
// values); other devices and dtypes through the tensor expression.
// Legend: B batch, T tokens, H heads, E head width.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// x [B, T, H, E], cos and sin [B, T, E] (one table per position, shared by all heads) -> [B, T, H, E].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace sbtrec::nn
