// GRU4Rec as in LLaRA: item embeddings into a GRU; the representation is the last layer's hidden
// state after exactly `length` steps (equal to packing the padded batch). Optional dropout
// (model.gru4rec.dropout, default 0 as LLaRA) on the embeddings and on the final state.
// Legend: B batch, T positions, D width.
#pragma once
#include "sbtrec/encoder/encoder.h"

namespace sbtrec::encoder {

class GRU4RecImpl : public EncoderImpl {
 public:
  GRU4RecImpl(const EncoderOptions& options, int64_t num_items);
  torch::Tensor sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) override;

 private:
  torch::nn::GRU gru{nullptr};
  double dropout_p_;
};
TORCH_MODULE(GRU4Rec);

}  // namespace sbtrec::encoder
