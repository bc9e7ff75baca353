// Several answers scored after one prompt, the prompt run once (S-DPO's chosen and rejected answers,
// issue 24): each row packs its prompt and its answers back to back, every answer sees the whole
// prompt and itself but not the other answers (a block visibility mask), and each answer's positions
// continue the prompt's. One forward of P + sum |a_j| tokens per row instead of J forwards of P + |a_j|
// (TRL's DPO trainers run the prompt once per answer); the log-probabilities equal those separate
// forwards' up to float rounding, gradients included. Legend: B rows, P prompt, J answers per row,
// T packed length, E width, V vocabulary, M answer tokens in all.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "sbtrec/llm/llama.h"

namespace sbtrec::llm {

// prompt_embeds [B, P, E]: row b's prompt in its first prompt_lengths[b] positions (right-padded);
// answers[b][j]: answer j's token ids (at least one token each; the same J for every row). Returns
// [B, J] float32: sum over answer j's tokens of log p(token | prompt, the answer's earlier tokens),
// differentiable with respect to prompt_embeds and the model's trainable parameters.
torch::Tensor shared_prompt_logprobs(LlamaForCausalLMImpl& model, const torch::Tensor& prompt_embeds,
                                     const std::vector<int64_t>& prompt_lengths,
                                     const std::vector<std::vector<std::vector<int64_t>>>& answers);

}  // namespace sbtrec::llm
