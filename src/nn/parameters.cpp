// Parameter counts (see parameters.h).
#include "sbtrec/nn/parameters.h"

#include <fmt/format.h>

#include <set>

namespace sbtrec::nn {

std::string trainable_report(const torch::nn::Module& module) {
  int64_t trainable = 0, total = 0;
  std::set<const void*> seen;  // tied weights count once
  for (const auto& p : module.parameters()) {
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  return fmt::format("trainable params: {} || all params: {} || trainable%: {:.4f}", trainable, total,
                     total ? 100.0 * (double)trainable / (double)total : 0.0);
}

}  // namespace sbtrec::nn
