// SASRec as LLaRA uses it: learned positions, pre-LN attention whose queries are LayerNorm(x) and
// whose keys/values are x, residual onto the normalised queries, scores scaled by 1/sqrt(D) (the
// full width, not the head width), Conv1d(k=1) feed-forward with post-LN, final LayerNorm `ln_3`,
// representation = hidden state at the last real position.
// Legend: B batch, T positions, D width, H heads, E = D / H head width.
#pragma once
#include "sbtrec/encoder/encoder.h"

namespace sbtrec::encoder {

struct SASRecBlockImpl : torch::nn::Module {
  SASRecBlockImpl(int64_t d, int64_t heads, double dropout);
  // Every position: x [B, T, D], key_padding [B, T] bool, mask [B, T, 1] -> [B, T, D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding, const torch::Tensor& mask);
  // One query position per row, last [B] (keys/values still span all positions): -> [B, D].
  // Equal to forward(...) gathered at `last`, at a tenth of the cost for T = 10.
  torch::Tensor forward_at(const torch::Tensor& x, const torch::Tensor& key_padding, const torch::Tensor& mask,
                           const torch::Tensor& last);

 private:
  // Queries from positions with normalised inputs q_in [B, P, D], allowed [B, 1, P, T], out_mask [B, P, 1].
  torch::Tensor attend_and_feed_forward(const torch::Tensor& x, const torch::Tensor& q_in, const torch::Tensor& allowed,
                                        const torch::Tensor& out_mask);

 public:

  int64_t d, heads;
  double dropout_p;
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  std::shared_ptr<torch::nn::Module> mh_attn, feed_forward;
  torch::nn::Linear linear_q{nullptr}, linear_k{nullptr}, linear_v{nullptr};
  torch::nn::Conv1d w_1{nullptr}, w_2{nullptr};
  torch::nn::LayerNorm ff_layer_norm{nullptr};
};
TORCH_MODULE(SASRecBlock);

class SASRecImpl : public EncoderImpl {
 public:
  SASRecImpl(const EncoderOptions& options, int64_t num_items);
  torch::Tensor sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) override;
  // All positions' hidden states after ln_3: [B, T, D].
  torch::Tensor hidden_states(const torch::Tensor& seq);

 private:
  // Embedding + positions + dropout, padding zeroed: x [B, T, D]; also key_padding [B, T], mask [B, T, 1].
  torch::Tensor embed(const torch::Tensor& seq, torch::Tensor& key_padding, torch::Tensor& mask);

  int64_t max_len_;
  double dropout_p_;
  torch::nn::Embedding positional_embeddings{nullptr};  // [T, D]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_3{nullptr};
};
TORCH_MODULE(SASRec);

}  // namespace sbtrec::encoder
