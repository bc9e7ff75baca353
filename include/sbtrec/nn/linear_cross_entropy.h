// Cross entropy of a linear output layer without materialising the logits: rows are processed in
// chunks, and each chunk's gradient is formed while its logits are still in cache (the loss is the
// end of the graph, so d loss / d logits is known in forward). For a causal LM this replaces the
// [B*T, V] float32 logits, their log-softmax and gradients (131 MB each per 1,024 tokens at
// V = 32000) with [chunk, V] buffers. Legend: N rows, D width, V classes, C chunk rows.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

struct LinearCrossEntropyOptions {
  int64_t chunk_rows = 256;    // rows per [C, V] logits chunk (256 x 32000 floats = 32 MB)
  int64_t ignore_index = -100;  // rows with this label add nothing and count for nothing
  bool onednn = false;          // the logits and d hidden through oneDNN's matmul on the CPU (onednn_linear.h)
};

// Mean over rows with label != ignore_index of -log softmax(hidden W^T)[label], equal to
// cross_entropy(linear(hidden, weight).float(), labels, ignore_index) including its gradients with
// respect to hidden and weight (weight's only when it requires grad). Logits are computed in the
// weight's dtype and upcast to float32, as transformers does. No counted row: NaN, as torch.
// hidden [N, D], weight [V, D], labels [N] int64 -> scalar float32.
torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                   const LinearCrossEntropyOptions& options = {});

}  // namespace sbtrec::nn
