// Fused Adam step (see fused_adam.h).
#include "sbtrec/optim/fused_adam.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace sbtrec::optim {

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& o = static_cast<torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& g = p.grad();
      const bool fusable = !o.amsgrad() && p.device().is_cpu() && p.scalar_type() == torch::kFloat32 &&
                           g.scalar_type() == torch::kFloat32 && p.is_contiguous() && g.is_contiguous() && !g.is_sparse();
      auto it = state_.find(p.unsafeGetTensorImpl());
      if (it == state_.end()) {
        auto s = std::make_unique<torch::optim::AdamParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(p.unsafeGetTensorImpl(), std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
      if (!fusable) {
        // Rare path: reuse the stock implementation for this one parameter.
        torch::optim::Adam single({p}, o);
        auto st = std::make_unique<torch::optim::AdamParamState>(s);
        single.state()[p.unsafeGetTensorImpl()] = std::move(st);
        single.step();
        s = static_cast<torch::optim::AdamParamState&>(*single.state()[p.unsafeGetTensorImpl()]);
        continue;
      }
      s.step(s.step() + 1);
      const double bc1 = 1 - std::pow(beta1, (double)s.step());
      const double bc2 = 1 - std::pow(beta2, (double)s.step());
      const float step_size = (float)(o.lr() / bc1);
      const float sqrt_bc2 = (float)std::sqrt(bc2);
      const float b1 = (float)beta1, b2 = (float)beta2, eps = (float)o.eps(), wd = (float)o.weight_decay();
      float* pp = p.data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      float* mp = s.exp_avg().data_ptr<float>();
      float* vp = s.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 16384, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float gi = wd != 0.f ? gp[i] + wd * pp[i] : gp[i];
          // Same operation order as the stock step: m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g;
          // p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps).
          const float m = mp[i] * b1 + (1.f - b1) * gi;
          const float v = vp[i] * b2 + (1.f - b2) * (gi * gi);
          mp[i] = m;
          vp[i] = v;
          pp[i] -= step_size * (m / (std::sqrt(v) / sqrt_bc2 + eps));
        }
      });
    }
  }
  return loss;
}

}  // namespace sbtrec::optim
