// RAM-Aligner (see ram_aligner.h).
#include "sbtrec/aligner/ram_aligner.h"

namespace sbtrec::aligner {

RamAlignerImpl::RamAlignerImpl(int64_t in_features, int64_t out_features, const AlignerOptions& o, double output_norm,
                               torch::Tensor palette)
    : in_features_(in_features), out_features_(out_features), type_(o.type), input_norm_(o.input_norm),
      output_norm_(output_norm), sharpness_(o.palette_sharpness) {
  TORCH_CHECK(in_features > 0 && out_features > 0, "RamAligner: widths must be positive, got ", in_features, " -> ", out_features);
  if (palette.defined()) {
    TORCH_CHECK(palette.dim() == 2 && palette.size(1) == out_features, "RamAligner: the palette must be [M, ", out_features,
                "], got ", palette.sizes());
    palette_ = register_buffer("palette", palette.detach().to(torch::kFloat32).contiguous());
  }
  const int64_t hidden = o.hidden_size > 0 ? o.hidden_size : out_features;
  const int64_t last = palette_.defined() ? palette_.size(0) : out_features;  // palette scores or the embedding
  if (o.type == AlignerType::kMlp)
    // GELU with erf, as torch.nn.GELU()'s default (LLaRA's projector)
    mlp_proj = torch::nn::Sequential(torch::nn::Linear(in_features, hidden), torch::nn::GELU(),
                                     torch::nn::Linear(hidden, last));
  else
    mlp_proj = torch::nn::Sequential(torch::nn::Linear(in_features, last));
  register_module("mlp_proj", mlp_proj);
}

torch::Tensor RamAlignerImpl::forward(const torch::Tensor& e, torch::ScalarType dtype) {
  TORCH_CHECK(e.size(-1) == in_features_, "RamAligner: input width ", e.size(-1), " but the aligner takes ", in_features_);
  const auto param_dtype = parameters().front().scalar_type();
  auto x = e.to(param_dtype);                                                                  // [N..., D]
  if (input_norm_ == InputNorm::kUnit) x = x / x.norm(2, -1, true).clamp_min(1e-12);
  auto y = mlp_proj->forward(x);                                                               // [N..., E] or [N..., M]
  if (palette_.defined()) {
    auto z = (y - y.mean(-1, true)) / y.std(-1, false, true).clamp_min(1e-6);                   // [N..., M]
    y = torch::matmul(torch::softmax(z * sharpness_, -1), palette_.to(y.scalar_type()));        // [N..., E]
  }
  if (output_norm_ > 0) y = y * (output_norm_ / y.norm(2, -1, true).clamp_min(1e-12));
  return y.to(dtype);
}

}  // namespace sbtrec::aligner
