// Adam with the same state, options and serialization as torch::optim::Adam, whose step updates each
// CPU float32 parameter in one pass (m, v, bias correction and the update fused) instead of ~10
// separate tensor kernels; other parameters (CUDA, other dtypes, amsgrad) take the stock step.
// The arithmetic follows torch.optim.Adam (L2 weight decay added to the gradient).
#pragma once
#include <torch/torch.h>

namespace sbtrec::optim {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace sbtrec::optim
