// y = x W^T for a handful of rows (decoding: one row per sequence and beam), CPU float32. At batch 1
// a linear layer is a matrix-vector product bound by how fast W streams from memory. On the
// development machine (AMD EPYC, torch 2.11's MKL) torch::linear streams a row-major W at ~15 GB/s
// where a plain sum reads ~38 GB/s; this kernel reads each row of W once for all rows of x, with
// vector accumulators folded pairwise (AVX-512, AVX2 and SSE clones picked at run time), and streams
// Llama's weights at ~34 GB/s. Legend: M rows of x, I in features, O out features.
#pragma once
#include <torch/torch.h>

#include "sbtrec/common/gguf_header.h"

namespace sbtrec::nn {

// Rows up to which few_row_linear beats the GEMM (above it W is re-read too often from cache).
constexpr int64_t kFewRows = 8;

// True when few_row_linear applies: CPU float32, contiguous W [O, I], x [..., I] with at most kFewRows
// rows, and no gradient wanted.
bool few_row_linear_applies(const torch::Tensor& x, const torch::Tensor& weight);

// x [..., I], weight [O, I] -> [..., O]; same values as torch::linear up to float rounding order.
// Any row count works (benchmarks compare beyond kFewRows); the layer uses it via few_row_linear_applies.
torch::Tensor few_row_linear(const torch::Tensor& x, const torch::Tensor& weight);

// A linear layer's weight kept in one of GGUF's 32-element block formats beside the float32 weight
// it was dequantized into. A GGUF model's projections are 4-bit and its embedding 8-bit: streaming
// the blocks instead of float32 reads 6.4x (Q4_1) or 3.8x (Q8_0) fewer bytes per decoded token, and
// decoding is bound by those bytes. Blocks are expanded to float32 in registers and multiplied in
// float32, so results equal the float32 weight's up to rounding order.
struct PackedWeight {
  gguf::TensorType type = gguf::TensorType::kF32;
  torch::Tensor blocks;  // uint8 [O, I / 32 * block bytes], rows in the float32 weight's order
  int64_t out_features = 0, in_features = 0;

  // True when `weight` is still the float32 tensor this was packed beside, unmodified: a replaced
  // weight (tying, resizing) or one changed in place (LoRA merge) falls back to the float32 path.
  // `weight` may have more rows than the blocks (see grown_into): those come from the float32 rows.
  bool mirrors(const torch::Tensor& weight) const;
  // The same blocks beside `weight` [O', I], O' >= O, whose first O rows are the weight this was
  // packed beside (an embedding grown by added special tokens keeps its blocks for the old rows).
  PackedWeight grown_into(const torch::Tensor& weight) const;

  const void* mirror_data = nullptr;  // identity of the float32 weight: its data and version
  int64_t mirror_version = -1;
};

// Types few_row_linear reads packed: Q8_0, Q4_0, Q4_1.
bool packable(gguf::TensorType type);

// Packs `blocks` (uint8 [O, row bytes], `type`) beside the float32 `weight` [O, I] they dequantize to.
// Throws std::invalid_argument when the type is not packable or the sizes disagree.
PackedWeight pack_weight(gguf::TensorType type, torch::Tensor blocks, const torch::Tensor& weight);

// How few_row_linear expands the blocks: the best vector kernel the CPU has (AVX-512, else AVX2 +
// FMA + F16C, else plain C++), or one named (tests compare them with each other).
enum class PackedKernel { kBest, kAvx512, kAvx2, kPortable };

// True when this CPU (and build) can run `kernel`.
bool packed_kernel_available(PackedKernel kernel);

// x [..., I] (CPU float32, no gradient) -> [..., O] = x W^T with W read from w's blocks, kFewRows
// rows of x per pass over them.
torch::Tensor few_row_linear(const torch::Tensor& x, const PackedWeight& w, PackedKernel kernel = PackedKernel::kBest);

}  // namespace sbtrec::nn
