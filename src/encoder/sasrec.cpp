// SASRec (see sasrec.h). Legend: B batch, T positions, D width, H heads, E head width.
#include "sbtrec/encoder/sasrec.h"

#include <cmath>

#include "sbtrec/nn/dropout.h"

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

torch::Tensor SASRecBlockImpl::attend_and_feed_forward(const torch::Tensor& x, const torch::Tensor& q_in,
                                                       const torch::Tensor& allowed, const torch::Tensor& out_mask) {
  const int64_t B = x.size(0), T = x.size(1), P = q_in.size(1), E = d / heads;
  auto q = linear_q(q_in).view({B, P, heads, E}).transpose(1, 2);  // [B, H, P, E]
  auto k = linear_k(x).view({B, T, heads, E}).transpose(1, 2);     // [B, H, T, E]
  auto v = linear_v(x).view({B, T, heads, E}).transpose(1, 2);     // [B, H, T, E]
  const double p = is_training() ? dropout_p : 0.0;
  auto attn = at::scaled_dot_product_attention(q, k, v, allowed, p, false, 1.0 / std::sqrt((double)d));  // [B, H, P, E]
  attn = attn.transpose(1, 2).reshape({B, P, d});                  // [B, P, D]
  // LLaRA multiplies the attention weights by a query mask sign(|sum ln_1(x)|); on the output it is
  // the same product. It differs from 1 only when a normalised query sums to exactly zero, so the
  // multiply is skipped when it is all ones (checked on CPU, where the check costs no sync).
  auto query_mask = q_in.sum(-1, true).ne(0);                      // [B, P, 1]
  auto h = (x.is_cpu() && query_mask.all().item<bool>()) ? attn + q_in : attn * query_mask.to(x.dtype()) + q_in;
  auto y = ln_2(h);                                                // [B, P, D]
  // Conv1d with kernel 1 over positions == a linear map per position.
  auto z = torch::linear(torch::relu(torch::linear(y, w_1->weight.squeeze(-1), w_1->bias)),
                         w_2->weight.squeeze(-1), w_2->bias);     // [B, P, D]
  z = nn::dropout(z, p, is_training());
  return ff_layer_norm(z + y) * out_mask;                          // [B, P, D]
}

torch::Tensor SASRecBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding,
                                       const torch::Tensor& mask) {
  const int64_t T = x.size(1);
  // Allowed (query i, key j): j <= i and key j is a real item.
  auto causal = torch::ones({T, T}, x.options().dtype(torch::kBool)).tril();                             // [T, T]
  auto allowed = causal.unsqueeze(0).logical_and(key_padding.logical_not().unsqueeze(1)).unsqueeze(1);  // [B, 1, T, T]
  return attend_and_feed_forward(x, ln_1(x), allowed, mask);                                             // [B, T, D]
}

torch::Tensor SASRecBlockImpl::forward_at(const torch::Tensor& x, const torch::Tensor& key_padding,
                                          const torch::Tensor& mask, const torch::Tensor& last) {
  const int64_t B = x.size(0), T = x.size(1);
  auto xq = x.gather(1, last.view({B, 1, 1}).expand({B, 1, d}));                          // [B, 1, D]
  auto keys = torch::arange(T, last.options()).unsqueeze(0).le(last.unsqueeze(1));       // [B, T]
  auto allowed = keys.logical_and(key_padding.logical_not()).view({B, 1, 1, T});         // [B, 1, 1, T]
  auto out_mask = mask.gather(1, last.view({B, 1, 1}));                                   // [B, 1, 1]
  return attend_and_feed_forward(x, ln_1(xq), allowed, out_mask).squeeze(1);             // [B, D]
}

SASRecImpl::SASRecImpl(const EncoderOptions& o, int64_t num_items)
    : EncoderImpl(num_items, o.hidden_size, o.hidden_size), max_len_(o.max_len), dropout_p_(o.dropout) {
  torch::nn::init::normal_(item_embeddings->weight, 0.0, 1.0);  // LLaRA's initialisation
  positional_embeddings = register_module("positional_embeddings", torch::nn::Embedding(o.max_len, o.hidden_size));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < o.sasrec.num_blocks; ++i) blocks->push_back(SASRecBlock(o.hidden_size, o.sasrec.num_heads, o.dropout));
  ln_3 = register_module("ln_3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden_size})));
}

torch::Tensor SASRecImpl::embed(const torch::Tensor& seq, torch::Tensor& key_padding, torch::Tensor& mask) {
  const int64_t T = seq.size(1);
  TORCH_CHECK(T <= max_len_, "SASRec: sequence length ", T, " exceeds model.max_len ", max_len_);
  auto x = item_embeddings(seq) + positional_embeddings->weight.narrow(0, 0, T);  // [B, T, D]
  key_padding = seq.eq(num_items_);                                                // [B, T]
  mask = padding_mask(seq);                                                        // [B, T, 1]
  // Dropout then zeroed padding, as LLaRA; on CPU both masks are applied in one multiply.
  if (is_training() && dropout_p_ > 0 && x.is_cpu())
    return x * (nn::dropout_mask(x.sizes(), dropout_p_, x.options()) * mask);
  return nn::dropout(x, dropout_p_, is_training()) * mask;
}

torch::Tensor SASRecImpl::hidden_states(const torch::Tensor& seq) {
  torch::Tensor key_padding, mask;
  auto x = embed(seq, key_padding, mask);                                          // [B, T, D]
  for (const auto& block : *blocks) x = block->as<SASRecBlock>()->forward(x, key_padding, mask);
  return ln_3(x);                                                                  // [B, T, D]
}

torch::Tensor SASRecImpl::sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) {
  torch::Tensor key_padding, mask;
  auto x = embed(seq, key_padding, mask);                                          // [B, T, D]
  const int64_t L = (int64_t)blocks->size();
  for (int64_t i = 0; i + 1 < L; ++i) x = blocks[i]->as<SASRecBlock>()->forward(x, key_padding, mask);
  // Only the last real position is read out, so the last block computes that position alone.
  auto z = blocks[L - 1]->as<SASRecBlock>()->forward_at(x, key_padding, mask, lengths - 1);  // [B, D]
  return ln_3(z);                                                                             // [B, D]
}

}  // namespace sbtrec::encoder
