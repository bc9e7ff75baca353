// Key/value cache for incremental decoding: per layer a preallocated [B, Hkv, capacity, E] buffer
// written in place, so decoding n tokens costs no O(n^2) copying; grows by doubling if needed.
// Legend: B batch (x beams), Hkv key/value heads, E head width, S cached positions.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace sbtrec::llm {

class KVCache {
 public:
  explicit KVCache(int64_t num_layers, int64_t capacity = 0) : k_(num_layers), v_(num_layers), capacity_(capacity) {}

  int64_t length() const { return length_; }  // positions already cached (before the current forward)
  // Writes k, v [B, Hkv, T, E] of `layer` at positions [length, length + T) and returns the cached
  // keys/values of positions [0, length + T).
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);
  // Called by the model once every layer has appended the current T positions.
  void advance(int64_t t) { length_ += t; }
  // Beam search: row i of the cache becomes row index[i].
  void reorder(const torch::Tensor& index);
  // A cache of `batch` rows, each holding this one-row cache's positions (a prompt prefix the rows
  // share), with room for `capacity` positions; this cache is left as it is.
  KVCache expanded(int64_t batch, int64_t capacity) const;

 private:
  std::vector<torch::Tensor> k_, v_;
  int64_t capacity_, length_ = 0;
};

}  // namespace sbtrec::llm
