// SASRec (see sasrec.h). Legend: B batch, T positions, D width, H heads, E head width.
#include "sbtrec/encoder/sasrec.h"

#include <cmath>

namespace sbtrec::encoder {

SASRecBlockImpl::SASRecBlockImpl(int64_t d_, int64_t heads_, double dropout)
    : d(d_), heads(heads_), dropout_p(dropout) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  mh_attn = register_module("mh_attn", std::make_shared<torch::nn::Module>());
  linear_q = mh_attn->register_module("linear_q", torch::nn::Linear(d, d));
  linear_k = mh_attn->register_module("linear_k", torch::nn::Linear(d, d));
  linear_v = mh_attn->register_module("linear_v", torch::nn::Linear(d, d));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  feed_forward = register_module("feed_forward", std::make_shared<torch::nn::Module>());
  w_1 = feed_forward->register_module("w_1", torch::nn::Conv1d(torch::nn::Conv1dOptions(d, d, 1)));
  w_2 = feed_forward->register_module("w_2", torch::nn::Conv1d(torch::nn::Conv1dOptions(d, d, 1)));
  ff_layer_norm = feed_forward->register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
}

torch::Tensor SASRecBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding,
                                       const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1), E = d / heads;
  auto q_in = ln_1(x);                                                         // [B, T, D]
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads, E}).transpose(1, 2); };
  auto q = split(linear_q(q_in));                                              // [B, H, T, E]
  auto k = split(linear_k(x));                                                 // [B, H, T, E]
  auto v = split(linear_v(x));                                                 // [B, H, T, E]
  // Allowed (query i, key j): j <= i and key j is a real item.
  auto causal = torch::ones({T, T}, x.options().dtype(torch::kBool)).tril();    // [T, T]
  auto allowed = causal.unsqueeze(0).logical_and(key_padding.logical_not().unsqueeze(1)).unsqueeze(1);  // [B, 1, T, T]
  const double p = is_training() ? dropout_p : 0.0;
  auto attn = at::scaled_dot_product_attention(q, k, v, allowed, p, false, 1.0 / std::sqrt((double)d));  // [B, H, T, E]
  attn = attn.transpose(1, 2).reshape({B, T, d});                              // [B, T, D]
  // LLaRA multiplies the attention weights by a query mask sign(|sum ln_1(x)|); on the output it is
  // the same product, and it only differs from 1 when a normalised query sums to exactly zero.
  auto query_mask = q_in.sum(-1, true).ne(0).to(x.dtype());                    // [B, T, 1]
  auto h = attn * query_mask + q_in;                                           // [B, T, D]
  auto y = ln_2(h);                                                            // [B, T, D]
  // Conv1d with kernel 1 over positions == a linear map per position.
  auto z = torch::linear(torch::relu(torch::linear(y, w_1->weight.squeeze(-1), w_1->bias)),
                         w_2->weight.squeeze(-1), w_2->bias);                 // [B, T, D]
  z = torch::dropout(z, p, is_training());
  return ff_layer_norm(z + y) * mask;                                          // [B, T, D]
}

SASRecImpl::SASRecImpl(const ModelOptions& o, int64_t num_items)
    : EncoderImpl(num_items, o.hidden_size, o.hidden_size), max_len_(o.max_len), dropout_p_(o.dropout) {
  torch::nn::init::normal_(item_embeddings->weight, 0.0, 1.0);  // LLaRA's initialisation
  positional_embeddings = register_module("positional_embeddings", torch::nn::Embedding(o.max_len, o.hidden_size));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < o.sasrec.num_blocks; ++i) blocks->push_back(SASRecBlock(o.hidden_size, o.sasrec.num_heads, o.dropout));
  ln_3 = register_module("ln_3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size})));
}

torch::Tensor SASRecImpl::hidden_states(const torch::Tensor& seq) {
  const int64_t T = seq.size(1);
  TORCH_CHECK(T <= max_len_, "SASRec: sequence length ", T, " exceeds model.max_len ", max_len_);
  auto x = item_embeddings(seq) + positional_embeddings->weight.narrow(0, 0, T);  // [B, T, D]
  x = torch::dropout(x, dropout_p_, is_training());
  auto key_padding = seq.eq(num_items_);                                           // [B, T]
  auto mask = padding_mask(seq);                                                   // [B, T, 1]
  x = x * mask;
  for (const auto& block : *blocks) x = block->as<SASRecBlock>()->forward(x, key_padding, mask);
  return ln_3(x);                                                                  // [B, T, D]
}

torch::Tensor SASRecImpl::sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) {
  auto h = hidden_states(seq);                                                     // [B, T, D]
  auto idx = (lengths - 1).view({-1, 1, 1}).expand({h.size(0), 1, h.size(2)});   // [B, 1, D]
  return h.gather(1, idx).squeeze(1);                                              // [B, D]
}

}  // namespace sbtrec::encoder
