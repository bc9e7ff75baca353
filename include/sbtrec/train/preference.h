// Preference optimisation over the candidate set (issue 24 §1): S-DPO's softmax loss (Chen et al.
// 2024, "On Softmax Direct Preference Optimization for Recommendation"), of which DPO's sigmoid loss is
// the case of one rejected answer. Legend: B cases, J = 1 + k answers (column 0 the chosen one).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "sbtrec/data/candidates.h"
#include "sbtrec/train/sbtrec_model.h"

namespace sbtrec::train {

// policy, reference [B, J]: log pi(a_j | x) and log pi_ref(a_j | x) (summed over the answer's tokens),
// column 0 the chosen answer, columns 1..k the rejected ones. With r_j = policy_j - reference_j:
//   loss = mean over cases of -log sigmoid(-log sum_{j >= 1} exp(beta (r_j - r_0)))
//        = mean softplus(logsumexp_j(beta (r_j - r_0))).
// k = 1: -log sigmoid(beta ((pi_0 - pi_1) - (ref_0 - ref_1))), DPO's sigmoid loss (TRL's "sigmoid").
// Returns a scalar float32 with gradient to `policy` (reference is used as given: pass it detached).
torch::Tensor sdpo_loss(const torch::Tensor& policy, const torch::Tensor& reference, double beta);

// The answers' log-probabilities of one batch under the policy (with gradient) and under the frozen
// reference (without), each case's prompt run once for all its answers (llm/shared_prompt.h):
// prompts right-padded without answers, users [B, Z] or undefined, answers[b] = chosen then rejected ids.
struct PreferenceScores {
  torch::Tensor policy, reference;  // [B, 1 + k] each
};
PreferenceScores preference_scores(SbtRecModelImpl& policy, SbtRecModelImpl& reference, const prompt::PromptBatch& prompts,
                                   const torch::Tensor& users, const std::vector<std::vector<std::vector<int64_t>>>& answers);

// One case's answers in the order the loss reads them: the target's first (chosen), then the candidates at
// positions `rejected` of cs.items, each as the ids training appends after the prompt
// (PromptBuilder::encode_answer: the title and the end of turn).
std::vector<std::vector<int64_t>> preference_answers(const prompt::PromptBuilder& builder, const data::Dataset& ds,
                                                     const data::CandidateSet& cs, const std::vector<int64_t>& rejected);

// Makes `reference` the frozen reference of `policy`: eval mode (no dropout), no parameter requiring
// grad, and the policy's frozen base weights in place of its own (one copy of the LLM in memory).
void freeze_as_reference(SbtRecModelImpl& reference, SbtRecModelImpl& policy);

}  // namespace sbtrec::train
