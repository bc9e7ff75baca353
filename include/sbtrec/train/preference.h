// Preference optimisation over the candidate set (issue 24 §1): S-DPO's softmax loss (Chen et al.
// 2024, "On Softmax Direct Preference Optimization for Recommendation"), of which DPO's sigmoid loss is
// the case of one rejected answer. Legend: B cases, J = 1 + k answers (column 0 the chosen one).
#pragma once
#include <torch/torch.h>

namespace sbtrec::train {

// policy, reference [B, J]: log pi(a_j | x) and log pi_ref(a_j | x) (summed over the answer's tokens),
// column 0 the chosen answer, columns 1..k the rejected ones. With r_j = policy_j - reference_j:
//   loss = mean over cases of -log sigmoid(-log sum_{j >= 1} exp(beta (r_j - r_0)))
//        = mean softplus(logsumexp_j(beta (r_j - r_0))).
// k = 1: -log sigmoid(beta ((pi_0 - pi_1) - (ref_0 - ref_1))), DPO's sigmoid loss (TRL's "sigmoid").
// Returns a scalar float32 with gradient to `policy` (reference is used as given: pass it detached).
torch::Tensor sdpo_loss(const torch::Tensor& policy, const torch::Tensor& reference, double beta);

}  // namespace sbtrec::train
