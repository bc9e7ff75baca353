// GRU4Rec (see gru4rec.h). Legend: B batch, T positions, D width.
#include "sbtrec/encoder/gru4rec.h"

#include "sbtrec/nn/dropout.h"

namespace sbtrec::encoder {

GRU4RecImpl::GRU4RecImpl(const EncoderOptions& o, int64_t num_items)
    : EncoderImpl(num_items, o.hidden_size, o.hidden_size), dropout_p_(o.gru4rec.dropout) {
  torch::nn::init::normal_(item_embeddings->weight, 0.0, 0.01);
  gru = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(o.hidden_size, o.hidden_size)
                                                  .num_layers(o.gru4rec.num_layers)
                                                  .batch_first(true)));
}

torch::Tensor GRU4RecImpl::sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) {
  auto e = nn::dropout(item_embeddings(seq), dropout_p_, is_training());            // [B, T, D]
  auto out = std::get<0>(gru(e));                                                   // [B, T, D] (last layer)
  // Right padding and a causal recurrence: the output at length-1 is the packed final state.
  auto idx = (lengths - 1).view({-1, 1, 1}).expand({out.size(0), 1, out.size(2)});  // [B, 1, D]
  return nn::dropout(out.gather(1, idx).squeeze(1), dropout_p_, is_training());      // [B, D]
}

}  // namespace sbtrec::encoder
