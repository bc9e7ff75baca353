// Sequential encoders (SASRec, GRU4Rec, Caser) behind one interface. Each maps a batch of padded
// histories to a sequence representation z (what SBT-Rec quantizes) and scores items with an output
// layer `s_fc`, as in LLaRA's recommenders; module names equal LLaRA's so imports are a rename at most.
// Legend: B batch, T max_len (padded history), D hidden size, Z representation width, N items, C candidates.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "sbtrec/encoder/options.h"

namespace sbtrec::encoder {

class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(int64_t num_items, int64_t hidden_size, int64_t representation_size);

  // seq [B, T] right-padded with num_items, lengths [B] >= 1  ->  z [B, Z]
  virtual torch::Tensor sequence_representation(const torch::Tensor& seq, const torch::Tensor& lengths) = 0;

  // z [B, Z] -> logits over all items [B, N]
  torch::Tensor all_logits(const torch::Tensor& z);
  // z [B, Z], items [B, C] -> logits of those items only [B, C] (cheap: no [B, N] product)
  torch::Tensor item_logits(const torch::Tensor& z, const torch::Tensor& items);
  // seq, lengths -> logits [B, N]
  torch::Tensor forward(const torch::Tensor& seq, const torch::Tensor& lengths);

  // The item-embedding table [N + 1, D] (row N is padding): LLaRA's aligner input.
  torch::Tensor item_embedding_table() const { return item_embeddings->weight; }
  // The scoring layer's rows [N, Z]: item i's logit is scoring_rows()[i] . z + bias[i].
  torch::Tensor scoring_rows() const { return s_fc->weight; }
  int64_t num_items() const { return num_items_; }
  int64_t hidden_size() const { return hidden_size_; }

 protected:
  // Zeroes padding positions: mask [B, T, 1] float.
  torch::Tensor padding_mask(const torch::Tensor& seq) const;

  int64_t num_items_, hidden_size_;
  torch::nn::Embedding item_embeddings{nullptr};  // [N + 1, D]
  torch::nn::Linear s_fc{nullptr};                // Z -> N
};

using Encoder = std::shared_ptr<EncoderImpl>;

// Builds the encoder named by options.type (fresh initialisation, seeded by torch's global RNG).
Encoder make_encoder(const EncoderOptions& options, int64_t num_items);

// The `encoder:` section of a config.yaml, checked as a config would be (`model:` in checkpoints
// written before sbtrec 0.2 is read too, with a note in the log). Throws CheckpointError without one.
EncoderOptions parse_encoder_section(const std::string& yaml_text, const std::string& source);

// Checkpoint directory: model.safetensors (state dict, metadata format=sbtrec-encoder, version=1)
// and config.yaml (at least the encoder: section). Writes are atomic per file.
void save_encoder(const std::string& dir, EncoderImpl& encoder, const std::string& config_yaml);
// Loads a checkpoint directory; shapes are checked against the model built from its config.yaml
// and `num_items` of the dataset; errors name the key. Returns the model options used.
Encoder load_encoder(const std::string& dir, int64_t num_items, EncoderOptions* options_out = nullptr);

}  // namespace sbtrec::encoder
