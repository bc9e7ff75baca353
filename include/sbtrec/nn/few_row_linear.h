// y = x W^T for a handful of rows (decoding: one row per sequence and beam), CPU float32. At batch 1
// a linear layer is a matrix-vector product bound by how fast W streams from memory. On the
// development machine (AMD EPYC, torch 2.11's MKL) torch::linear streams a row-major W at ~15 GB/s
// where a plain sum reads ~38 GB/s; this kernel reads each row of W once for all rows of x, with
// vector accumulators folded pairwise (AVX-512, AVX2 and SSE clones picked at run time), and streams
// Llama's weights at ~34 GB/s. Legend: M rows of x, I in features, O out features.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// Rows up to which few_row_linear beats the GEMM (above it W is re-read too often from cache).
constexpr int64_t kFewRows = 8;

// True when few_row_linear applies: CPU float32, contiguous W [O, I], x [..., I] with at most kFewRows
// rows, and no gradient wanted.
bool few_row_linear_applies(const torch::Tensor& x, const torch::Tensor& weight);

// x [..., I], weight [O, I] -> [..., O]; same values as torch::linear up to float rounding order.
// Any row count works (benchmarks compare beyond kFewRows); the layer uses it via few_row_linear_applies.
torch::Tensor few_row_linear(const torch::Tensor& x, const torch::Tensor& weight);

}  // namespace sbtrec::nn
