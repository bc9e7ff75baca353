// y = x W^T through oneDNN's matmul (the `mkldnn::_linear_pointwise` op that torch.compile's CPU code
// uses), for the CPU matrix products of many rows without gradient (a prompt's prefill, likelihood
// scoring, the output layer). torch::linear in float32 calls MKL's sgemm, which on the AMD EPYC
// development machine (AVX-512 + AVX512_BF16, torch 2.11 / MKL 2024.2) runs at ~215 GFLOP/s on two
// cores where oneDNN's float32 matmul runs at ~410-470 GFLOP/s on the same shapes (BENCHMARKS.md,
// issue 23 §6). Same arithmetic in the same dtype: results equal torch::linear's up to the order of
// float rounding (~1e-6 relative). Training uses it through frozen_linear and LoRA's node (llm/lora.cpp).
// Legend: M rows of x, I in features, O out features.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// True when this LibTorch has oneDNN and its `mkldnn::_linear_pointwise` op (checked once).
bool onednn_linear_available();

// True when onednn_linear applies: oneDNN available, CPU float32 or bfloat16 x [..., I] and weight [O, I]
// of one dtype, and no gradient wanted (GradMode off, or neither tensor requires grad).
bool onednn_linear_applies(const torch::Tensor& x, const torch::Tensor& weight);

// x [..., I], weight [O, I] -> [..., O]. Throws when onednn_linear_applies is false. weight may be a
// strided view (weight.t() of an [I, O] tensor multiplies by its transpose without a copy).
torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight);

// onednn_linear where `onednn` asks for it and it applies, torch::linear otherwise.
torch::Tensor linear_product(const torch::Tensor& x, const torch::Tensor& weight, bool onednn);

// The product of a frozen weight inside training: onednn_linear forward and for x's gradient (g W as
// onednn_linear(g, W^T)), one autograd node; torch::linear where oneDNN does not apply. weight must not
// require grad. x [..., I], weight [O, I] -> [..., O].
torch::Tensor frozen_linear(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace sbtrec::nn
