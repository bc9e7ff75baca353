// RAM-Aligner (paper section 3.3): maps a behavioural vector (MBSR's e_rq, or a continuous encoder
// vector in the w/o-HDSD ablation) into one token embedding of the LLM. Linear(d -> h) -> GELU ->
// Linear(h -> d_llm) as LLaRA's projector (64 -> 4096 -> 4096), or one Linear (the w/o-RAM ablation).
// Sub-modules carry LLaRA's names (mlp_proj.0 / mlp_proj.2), so its projector weights load by name.
// Legend: N vectors, D behavioural width, H hidden width, E the LLM's embedding width.
#pragma once
#include <torch/torch.h>

#include "sbtrec/aligner/options.h"

namespace sbtrec::aligner {

class RamAlignerImpl : public torch::nn::Module {
 public:
  // in_features D, out_features E; PyTorch's default Linear initialisation (seeded by torch's RNG).
  // `output_norm` > 0: every output token is rescaled to this length (options.output_scale
  // embeddings: the owner passes the mean norm of the LLM's embedding rows).
  // `palette` [M, E] (options.palette_size > 0): the fixed embedding rows the tokens mix; the last
  // layer then has M outputs.
  RamAlignerImpl(int64_t in_features, int64_t out_features, const AlignerOptions& options = {}, double output_norm = 0,
                 torch::Tensor palette = {});

  // e [N..., D] (float32) -> [N..., E] in `dtype` (the LLM's embedding dtype); computed in the
  // parameters' dtype (float32 trainables under a bf16 LLM). options.input_norm unit scales each
  // e to length 1 first.
  torch::Tensor forward(const torch::Tensor& e, torch::ScalarType dtype = torch::kFloat32);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  AlignerType type() const { return type_; }

  torch::nn::Sequential mlp_proj{nullptr};  // [0] Linear(D, H), [1] GELU, [2] Linear(H, E); or [0] Linear(D, E)

 private:
  int64_t in_features_, out_features_;
  AlignerType type_;
  InputNorm input_norm_;
  double output_norm_;
  double sharpness_;
  torch::Tensor palette_;  // [M, E] buffer, or undefined
};
TORCH_MODULE(RamAligner);

}  // namespace sbtrec::aligner
