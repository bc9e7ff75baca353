// S-DPO's loss (see preference.h).
#include "sbtrec/train/preference.h"

namespace sbtrec::train {

torch::Tensor sdpo_loss(const torch::Tensor& policy, const torch::Tensor& reference, double beta) {
  TORCH_CHECK(policy.dim() == 2 && policy.sizes() == reference.sizes() && policy.size(1) >= 2,
              "sdpo_loss: policy and reference log-probabilities must both be [B, 1 + k], k >= 1; got ", policy.sizes(),
              " and ", reference.sizes());
  auto r = policy.to(torch::kFloat32) - reference.to(torch::kFloat32);                  // [B, J]
  auto margin = beta * (r.narrow(1, 1, r.size(1) - 1) - r.narrow(1, 0, 1));             // [B, k]
  return torch::nn::functional::softplus(torch::logsumexp(margin, 1)).mean();          // []
}

}  // namespace sbtrec::train
