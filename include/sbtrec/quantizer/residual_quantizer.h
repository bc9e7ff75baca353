// HDSD + MBSR (paper, sections 3.2-3.3): a residual quantizer with L codebooks of K codes. Per level
// the nearest code of the current residual is chosen (HDSD, Algorithm 1) and e_rq is the sum of the
// chosen code rows (MBSR), differentiable with respect to exactly those rows so that the LLM's loss
// moves the codebooks (SBS-AO). Also its k-means++ initialisation, optional VQ losses, dead-code reset
// and the statistics the programs log.
// Legend: N vectors, L levels, K codes per level, D vector width.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/quantizer/options.h"

namespace sbtrec::quantizer {

struct QuantizerOutput {
  torch::Tensor indices;  // [N, L] int64: per level the chosen code
  torch::Tensor e_rq;     // [N, D] float32: sum of the chosen code rows (gradient reaches only those rows)
  torch::Tensor loss;     // [] weighted codebook + commitment losses; a constant 0 when both weights are 0
};

struct LevelStats {
  int64_t used = 0;           // codes chosen by at least one vector
  double usage = 0;           // used / K
  double perplexity = 0;      // exp(entropy of the code frequencies): K when usage is uniform
  double relative_error = 0;  // ||x - e_rq|| / ||x|| with the levels up to this one (Frobenius over all vectors)
};

struct QuantizerStats {
  int64_t vectors = 0;
  std::vector<LevelStats> levels;
  double relative_error = 0;    // with all L levels
  int64_t distinct_tuples = 0;  // distinct full code tuples
  int64_t collisions = 0;       // vectors whose full tuple an earlier vector already has (= vectors - distinct_tuples)
  double collision_rate = 0;    // collisions / vectors (LC-Rec's figure)
  int64_t largest_shared_tuple = 0;  // vectors on the most crowded full tuple (1: all unique)
  nlohmann::json to_json() const;
};

class ResidualQuantizerImpl : public torch::nn::Module {
 public:
  // Codebooks start at zero: fill them with init_kmeans_pp or load_codebooks before use.
  ResidualQuantizerImpl(const QuantizerOptions& options, int64_t dim);

  // x [N, D] -> indices (from the current codebooks, under no grad; ties -> the lowest index), e_rq, loss.
  // No straight-through path: e_rq carries no gradient to x (the paper's inputs are frozen). In training
  // mode with dead_codes.enabled, each code's choices are counted for the dead-code window (end_step).
  QuantizerOutput forward(const torch::Tensor& x);

  // Dead-code reset, once per optimizer step (the trainer calls it after the step): a window is
  // dead_codes.window steps. At its end the counts are summed over the ranks by `sum_over_ranks` (in
  // place; identity for one process), and every code chosen fewer than dead_codes.threshold times is
  // re-seeded from the vectors of `pool` [P, D] that the codebooks reconstruct worst at that level
  // (all item rows, or all training user vectors: the same on every rank, so every rank re-seeds alike
  // and W processes equal one). An optimizer keeps its moments of a re-seeded row. A window in which the
  // quantizer was never used resets nothing. Returns the number of codes re-seeded.
  int64_t end_step(const torch::Tensor& pool, const std::function<void(torch::Tensor&)>& sum_over_ranks = {});
  // The window's counters, for the training state (exact resume): {"steps", "usage": [[...] per level]}.
  nlohmann::json dead_code_state() const;
  void restore_dead_code_state(const nlohmann::json& state);

  // HDSD alone: indices [N, L] for x [N, D], no grad.
  torch::Tensor encode(const torch::Tensor& x) const;
  // The vectors as the codes see them: x / ||x|| with quantizer.normalize, else x itself.
  torch::Tensor prepared(const torch::Tensor& x) const;

  // quantizer.collisions: index. The extra codebook [C, D] (C = the largest group at the fit, or as
  // loaded), undefined otherwise; its rows are added by extra_rows. make_index_codebook sizes and
  // initialises it for the collision ranks `rank` [N] of the fitted items (row 0 zero: an item alone
  // on its tuple keeps exactly its MBSR sum; rows 1.. drawn N(0, s^2) per coordinate from `seed`'s
  // stream, s the RMS per coordinate of the residual `residual` [N, D] the L levels leave).
  bool has_index() const { return index_codebook.defined(); }
  void make_index_codebook(const torch::Tensor& rank, const torch::Tensor& residual, uint64_t seed);
  // Rows of the extra codebook for ranks [N] (clamped to C - 1), differentiable with respect to them: [N, D].
  torch::Tensor extra_rows(const torch::Tensor& rank) const;
  // MBSR alone: indices [N, L] -> e_rq [N, D], differentiable with respect to the chosen rows.
  torch::Tensor decode(const torch::Tensor& indices) const;

  // Per level: k-means++ seeding, then options.kmeans_iterations Lloyd iterations, on the residuals the
  // previous levels leave of the frozen x [N, D]. Deterministic for a seed: the draws come from a
  // counter-based stream (the same on every machine; torch's global generator plays no part), so on the
  // CPU one build and thread count gives bit-identical codebooks (CUDA's index_add may order the sums
  // of the Lloyd means differently from run to run). N < K is a ConfigError (K distinct codes need K vectors); when a level has
  // fewer than K distinct residuals, the extra codes repeat existing ones and stay unused (the usage
  // statistic shows it). Resets the dead-code counters.
  void init_kmeans_pp(const torch::Tensor& x, uint64_t seed);

  // Replaces the codebooks; `source` names the origin in the error when the shape is not [L, K, D].
  void load_codebooks(const torch::Tensor& codebooks, const std::string& source);
  // Replaces the extra codebook with `index` [C, D] (any C >= 1; the parameter keeps its identity).
  void load_index_codebook(const torch::Tensor& index, const std::string& source);

  QuantizerStats stats(const torch::Tensor& x) const;

  int64_t levels() const { return codebooks.size(0); }
  int64_t codes() const { return codebooks.size(1); }
  int64_t dim() const { return codebooks.size(2); }
  const QuantizerOptions& options() const { return options_; }

  torch::Tensor codebooks;  // [L, K, D] float32, registered parameter "codebooks"
  torch::Tensor index_codebook;  // [C, D] float32, parameter "index_codebook" with quantizer.collisions: index

 private:
  void count_usage(const torch::Tensor& indices);

  QuantizerOptions options_;
  // [L, K] int64: this rank's choices in the current dead-code window (CPU). Not a buffer: it belongs to
  // the training state (dead_code_state), not to the codebooks' checkpoint.
  torch::Tensor usage_;
  int64_t window_steps_ = 0;
};
TORCH_MODULE(ResidualQuantizer);

// Index of the nearest row of `codebook` [K, D] for each row of `r` [N, D] by squared L2 (computed in
// float64; exact ties -> the lowest index): [N] int64. No grad.
torch::Tensor nearest_codes(const torch::Tensor& r, const torch::Tensor& codebook);

// Each row's rank among the rows of `indices` [N, L] with the same full tuple, in row order: [N] int64
// (0 for a row alone on its tuple). TIGER's disambiguating code.
torch::Tensor collision_ranks(const torch::Tensor& indices);

// Groups of rows of `indices` [N, L] that share a full code tuple (only groups of 2 or more), each
// sorted, groups ordered by their first row.
std::vector<std::vector<int64_t>> shared_tuples(const torch::Tensor& indices);

}  // namespace sbtrec::quantizer
