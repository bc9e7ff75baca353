// Caser (see caser.h). Legend: B batch, T positions, D width, F filters.
#include "sbtrec/encoder/caser.h"

#include "sbtrec/nn/dropout.h"

namespace sbtrec::encoder {
namespace {
int64_t caser_width(const EncoderOptions& o) {
  return o.hidden_size + (int64_t)o.caser.num_filters * (int64_t)o.caser.filter_sizes.size();
}
}  // namespace

CaserImpl::CaserImpl(const EncoderOptions& o, int64_t num_items)
    : EncoderImpl(num_items, o.hidden_size, caser_width(o)), max_len_(o.max_len), dropout_p_(o.dropout) {
  torch::nn::init::normal_(item_embeddings->weight, 0.0, 0.01);
  horizontal_cnn = register_module("horizontal_cnn", torch::nn::ModuleList());
  for (int h : o.caser.filter_sizes) {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, o.caser.num_filters, {h, o.hidden_size}));
    torch::nn::init::xavier_normal_(conv->weight);
    torch::nn::init::constant_(conv->bias, 0.1);
    horizontal_cnn->push_back(conv);
  }
  vertical_cnn = register_module("vertical_cnn", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 1, {o.max_len, 1})));
  torch::nn::init::xavier_normal_(vertical_cnn->weight);
  torch::nn::init::constant_(vertical_cnn->bias, 0.1);
}

torch::Tensor CaserImpl::sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) {
  TORCH_CHECK(seq.size(1) == max_len_, "Caser needs histories padded to model.max_len=", max_len_);
  auto e = (item_embeddings(seq) * padding_mask(seq)).unsqueeze(1);  // [B, 1, T, D]
  std::vector<torch::Tensor> parts;
  for (const auto& m : *horizontal_cnn) {
    auto h = torch::relu(m->as<torch::nn::Conv2d>()->forward(e)).squeeze(3);  // [B, F, T - h + 1]
    parts.push_back(std::get<0>(h.max(2)));                                  // [B, F]
  }
  auto v = torch::relu(vertical_cnn(e)).view({e.size(0), -1});             // [B, D]
  parts.push_back(v);
  return nn::dropout(torch::cat(parts, 1), dropout_p_, is_training());      // [B, F * |sizes| + D]
}

}  // namespace sbtrec::encoder
