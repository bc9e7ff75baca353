// HDSD over a frozen encoder: the behaviour vectors of each kind (item-embedding rows, sequence
// representations of the histories), one residual quantizer per kind (the two lie in different spaces),
// fitting from an encoder checkpoint and the files sbtrec-quantize writes and the trainer reads.
//   <dir>/codebooks.safetensors  codebooks [L, K, D] (items), user_codebooks [L, K, Z] (user)
//   <dir>/codes.safetensors      item_codes [N, L] (row i = item i), train_user_codes [S, L] (training sample s)
//   <dir>/stats.json             input and quantizer statistics per kind, items sharing a full code tuple
//                                (with their titles), dataset, seed and (sbtrec-quantize) the encoder
//   <dir>/config.yaml            the resolved config
// Legend: N items, S samples, L levels, K codes, D item-embedding width, Z representation width.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/quantizer/residual_quantizer.h"

namespace sbtrec::quantizer {

// The encoder's rows standing for the items (a detached copy): the item-embedding rows without the
// padding row [N, D] (ItemRows::kInput), or the scoring layer's rows [N, Z] (kOutput).
torch::Tensor item_vectors(const encoder::EncoderImpl& encoder, ItemRows rows = ItemRows::kInput);
// z = sequence_representation of each sample's history, in eval mode (no dropout), no grad: [S, Z].
torch::Tensor user_vectors(encoder::EncoderImpl& encoder, const std::vector<data::Sample>& samples, int max_len,
                           int batch_size);

// What the aligner will see of a kind's inputs: their scale and spread.
struct InputStats {
  int64_t vectors = 0, dim = 0;
  double mean_norm = 0, std_norm = 0;  // of the rows' L2 norms
  double mean_coordinate_std = 0;      // the per-coordinate standard deviation, averaged over coordinates
  nlohmann::json to_json() const;
};
InputStats input_stats(const torch::Tensor& x);

// The quantizers of `options.inputs`: registered as "items" and/or "user" (the other is null).
class HdsdImpl : public torch::nn::Module {
 public:
  HdsdImpl(const QuantizerOptions& options, int64_t item_dim, int64_t user_dim);
  ResidualQuantizer items{nullptr};  // [L, K, D]
  ResidualQuantizer user{nullptr};   // [L, K, Z]
};
TORCH_MODULE(Hdsd);

struct HdsdFit {
  Hdsd hdsd{nullptr};
  torch::Tensor item_codes;        // [N, L] int64, or undefined without items
  torch::Tensor train_user_codes;  // [S, L] int64 of the training samples, or undefined without user
  nlohmann::json stats;            // {"dataset", "seed", "items": {...}, "user": {...}} (the kinds fitted)
};

// The seed k-means++ uses: quantizer.seed, or the run's seed when it is -1.
uint64_t kmeans_seed(const QuantizerOptions& options, uint64_t run_seed);

// Fits each kind's codebooks by k-means++ on the vectors of the frozen `encoder` (items: its table;
// user: the training samples of `ds`), logs their input statistics, and gathers the statistics,
// codes and (items) the groups of items sharing a full tuple, with their titles. `train_users` [S, Z]:
// the training samples' user vectors when the caller has them already (else computed here).
HdsdFit fit_hdsd(const QuantizerOptions& options, uint64_t seed, encoder::EncoderImpl& encoder, const data::Dataset& ds,
                 int max_len, int batch_size, const torch::Tensor& train_users = {});

// Writes the files above into `dir` as one atomic directory (the previous `dir`, if any, is replaced
// only once every file is complete).
void save_hdsd(const std::string& dir, const HdsdFit& fit, const std::string& config_yaml);

// Loads <dir>/codebooks.safetensors into the quantizers `hdsd` has; a missing file, key or a shape
// that does not match the options is a CheckpointError naming the file and key; so are item codebooks
// fitted on other rows than `item_rows` (quantizer.item_rows).
void load_hdsd_codebooks(const std::string& dir, HdsdImpl& hdsd, ItemRows item_rows = ItemRows::kInput);

}  // namespace sbtrec::quantizer
