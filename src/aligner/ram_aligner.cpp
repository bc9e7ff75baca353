// RAM-Aligner (see ram_aligner.h).
#include "sbtrec/aligner/ram_aligner.h"

namespace sbtrec::aligner {

RamAlignerImpl::RamAlignerImpl(int64_t in_features, int64_t out_features, const AlignerOptions& o)
    : in_features_(in_features), out_features_(out_features), type_(o.type) {
  TORCH_CHECK(in_features > 0 && out_features > 0, "RamAligner: widths must be positive, got ", in_features, " -> ", out_features);
  const int64_t hidden = o.hidden_size > 0 ? o.hidden_size : out_features;
  if (o.type == AlignerType::kMlp)
    // GELU with erf, as torch.nn.GELU()'s default (LLaRA's projector)
    mlp_proj = torch::nn::Sequential(torch::nn::Linear(in_features, hidden), torch::nn::GELU(),
                                     torch::nn::Linear(hidden, out_features));
  else
    mlp_proj = torch::nn::Sequential(torch::nn::Linear(in_features, out_features));
  register_module("mlp_proj", mlp_proj);
}

torch::Tensor RamAlignerImpl::forward(const torch::Tensor& e, torch::ScalarType dtype) {
  TORCH_CHECK(e.size(-1) == in_features_, "RamAligner: input width ", e.size(-1), " but the aligner takes ", in_features_);
  const auto param_dtype = parameters().front().scalar_type();
  return mlp_proj->forward(e.to(param_dtype)).to(dtype);  // [N..., E]
}

}  // namespace sbtrec::aligner
