// Padded tensors for a list of samples, in the encoders' layout: right padding (real items first),
// the most recent max_len items kept, pad id = num_items.
// Legend: S samples, T = max_len.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

struct SampleTensors {
  torch::Tensor seq;      // [S, T] int64, right-padded with num_items
  torch::Tensor lengths;  // [S] int64, >= 1 (an empty history is one padding step)
  torch::Tensor target;   // [S] int64
};

SampleTensors to_tensors(const std::vector<Sample>& samples, int64_t num_items, int max_len);

}  // namespace sbtrec::data
