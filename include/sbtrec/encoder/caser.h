// Caser as in LLaRA: horizontal convolutions (heights filter_sizes, num_filters each) max-pooled over
// time, one vertical convolution over all T positions, concatenated: Z = D + F * |filter_sizes|.
// Legend: B batch, T positions (= max_len), D width, F filters.
#pragma once
#include "sbtrec/encoder/encoder.h"

namespace sbtrec::encoder {

class CaserImpl : public EncoderImpl {
 public:
  CaserImpl(const EncoderOptions& options, int64_t num_items);
  torch::Tensor sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) override;

 private:
  int64_t max_len_;
  double dropout_p_;
  torch::nn::ModuleList horizontal_cnn{nullptr};
  torch::nn::Conv2d vertical_cnn{nullptr};
};
TORCH_MODULE(Caser);

}  // namespace sbtrec::encoder
