// SBT-Rec's forward pass (paper, Figure 2): each behavioural slot of a hybrid prompt takes its
// vector from the frozen encoder (an item-embedding row, or the user's sequence representation),
// HDSD picks its codes from the current codebooks, MBSR sums the chosen rows into e_rq, the
// RAM-Aligner maps e_rq to one LLM embedding, and that embedding replaces the slot token's row in
// inputs_embeds. The loss is the LLM's generation loss on the answer; through SBS-AO it reaches the
// codebooks, the aligners and the LoRA weights at once. Without a quantizer (the w/o-HDSD ablation,
// LLaRA) the continuous vectors go to the aligner directly.
// Legend: B prompts, T tokens, S slots, N items, D item width, Z user width, E LLM embedding width.
#pragma once
#include <torch/torch.h>

#include "sbtrec/aligner/ram_aligner.h"
#include "sbtrec/llm/llama.h"
#include "sbtrec/prompt/hybrid_prompt.h"
#include "sbtrec/quantizer/hdsd.h"

namespace sbtrec::train {

class SbtRecModelImpl : public torch::nn::Module {
 public:
  // `item_vectors` [N, D]: the frozen encoder's item rows (quantizer::item_vectors). `hdsd`: the
  // fitted quantizers (its items / user members may be null: those kinds stay continuous); null
  // for no quantization at all. `user_dim` Z: 0 when prompts carry no user token.
  SbtRecModelImpl(llm::LlamaForCausalLM llm, torch::Tensor item_vectors, quantizer::Hdsd hdsd, int64_t user_dim,
                  const aligner::AlignerOptions& aligner_options);

  // The aligned embeddings of `items` [S] (item ids): [S, E] in the LLM's embedding dtype.
  // `quantizer_loss`, when given, accumulates HDSD's weighted codebook + commitment losses ([]).
  torch::Tensor item_embeddings(const torch::Tensor& items, torch::Tensor* quantizer_loss = nullptr);
  // The aligned embeddings of user vectors [S, Z]: [S, E].
  torch::Tensor user_embeddings(const torch::Tensor& user_vectors, torch::Tensor* quantizer_loss = nullptr);

  // The prompt's token embeddings with every slot row replaced: [B, T, E]. `user_vectors` [B, Z]
  // (one per prompt) is needed when the batch has user slots.
  torch::Tensor inputs_embeds(const prompt::PromptBatch& batch, const torch::Tensor& user_vectors = {},
                              torch::Tensor* quantizer_loss = nullptr);
  // Mean cross entropy of the answer tokens (the batch's labels), through the chunked loss, plus HDSD's
  // weighted codebook and commitment losses of this batch's slots (quantizer.codebook_loss,
  // quantizer.commitment_loss: each a mean over the quantized vectors, per kind, summed over levels).
  torch::Tensor loss(const prompt::PromptBatch& batch, const torch::Tensor& user_vectors = {});

  // The behavioural-token control of the quality run: slot item i reads the vector of item
  // permutation[i] (a shuffled [N] int64), so each item keeps a consistent but wrong token.
  void set_item_permutation(torch::Tensor permutation);

  llm::LlamaForCausalLM llm{nullptr};
  quantizer::Hdsd hdsd{nullptr};
  // D -> E, Z -> E (user_aligner null without a user token, or when aligner.shared: the item aligner
  // then maps user vectors too)
  aligner::RamAligner item_aligner{nullptr}, user_aligner{nullptr};
  torch::Tensor item_vectors;  // [N, D] buffer, frozen

 private:
  torch::Tensor permutation_;  // [N] or undefined
  int64_t user_dim_ = 0;
  bool user_as_item_ = false;  // aligner.user_as_item
};
TORCH_MODULE(SbtRecModel);

}  // namespace sbtrec::train
