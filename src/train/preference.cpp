// S-DPO's loss (see preference.h).
#include "sbtrec/train/preference.h"

#include "sbtrec/llm/shared_prompt.h"

namespace sbtrec::train {

torch::Tensor sdpo_loss(const torch::Tensor& policy, const torch::Tensor& reference, double beta) {
  TORCH_CHECK(policy.dim() == 2 && policy.sizes() == reference.sizes() && policy.size(1) >= 2,
              "sdpo_loss: policy and reference log-probabilities must both be [B, 1 + k], k >= 1; got ", policy.sizes(),
              " and ", reference.sizes());
  auto r = policy.to(torch::kFloat32) - reference.to(torch::kFloat32);                  // [B, J]
  auto margin = beta * (r.narrow(1, 1, r.size(1) - 1) - r.narrow(1, 0, 1));             // [B, k]
  return torch::nn::functional::softplus(torch::logsumexp(margin, 1)).mean();          // []
}

PreferenceScores preference_scores(SbtRecModelImpl& policy, SbtRecModelImpl& reference, const prompt::PromptBatch& prompts,
                                   const torch::Tensor& users, const std::vector<std::vector<std::vector<int64_t>>>& answers) {
  PreferenceScores s;
  s.policy = llm::shared_prompt_logprobs(*policy.llm, policy.inputs_embeds(prompts, users), prompts.prompt_lengths, answers);
  torch::NoGradGuard ng;
  s.reference =
      llm::shared_prompt_logprobs(*reference.llm, reference.inputs_embeds(prompts, users), prompts.prompt_lengths, answers);
  return s;
}

std::vector<std::vector<int64_t>> preference_answers(const prompt::PromptBuilder& builder, const data::Dataset& ds,
                                                     const data::CandidateSet& cs, const std::vector<int64_t>& rejected) {
  std::vector<std::vector<int64_t>> answers = {builder.encode_answer(ds.titles[(size_t)cs.items[(size_t)cs.target_index]])};
  for (int64_t c : rejected) answers.push_back(builder.encode_answer(ds.titles[(size_t)cs.items[(size_t)c]]));
  return answers;
}

void freeze_as_reference(SbtRecModelImpl& reference, SbtRecModelImpl& policy) {
  reference.eval();
  for (auto& p : reference.parameters()) p.set_requires_grad(false);
  reference.llm->share_frozen_weights(*policy.llm);
}

}  // namespace sbtrec::train
