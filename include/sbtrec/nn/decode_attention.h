// Attention of one new query per sequence over cached keys/values (a KV-cache decoding step) on CPU
// float32: scaled dot products, softmax and the weighted sum of values for every head in one small
// kernel. For a single query at::scaled_dot_product_attention's dispatch and block setup cost more
// than the arithmetic (~40 us per layer for 8 heads x 100 keys here); this takes a few.
// Grouped-query attention: query head h reads key/value head h / (H / Hkv).
// Legend: B batch, H query heads, Hkv key/value heads, S cached positions, E head width.
#pragma once
#include <torch/torch.h>

namespace sbtrec::nn {

// True for CPU float32 q [B, H, 1, E], k/v [B, Hkv, S, E] (unit stride along E), mask undefined or
// bool [B, 1, 1, S] (any strides), H a multiple of Hkv, and no gradient wanted.
bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask);

// softmax(q k^T * scale, masked where mask is false) v -> [B, H, 1, E] (contiguous).
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale);

}  // namespace sbtrec::nn
