// Recommendation metrics. HR@1 over candidate sets = correct / all cases (LLaRA's published
// definition); a tie with another candidate counts as a miss. HR@10 and NDCG@10 rank the target among
// all items, ties counted against the target. For an encoder every case names exactly one candidate,
// so ValidRatio is 1 by construction; LLM generation (later) is where it can fall below 1.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"

namespace sbtrec::eval {

struct Metrics {
  int64_t n = 0;
  double hr1 = 0, valid_ratio = 0, hr10 = 0, ndcg10 = 0;
  nlohmann::json to_json() const;
};

// Accumulates per-case outcomes; finalize() divides by the number of cases.
struct MetricsAccumulator {
  int64_t n = 0, hits1 = 0, valid = 0;
  double hits10 = 0, ndcg10 = 0;
  void add_candidate_case(bool hit, bool valid_output);
  // rank: number of items ranked above the target (0 = best).
  void add_full_rank(int64_t rank);
  Metrics finalize() const;
};

// Scores `split` with the encoder (eval mode, no grad): HR@1 on the given candidate sets, HR@10 and
// NDCG@10 by full ranking.
Metrics evaluate_encoder(encoder::EncoderImpl& model, const data::Dataset& ds, data::Split split,
                         const std::vector<data::CandidateSet>& candidates, int max_len, int batch_size);

// A small fixed-width table: "model  split  n  HR@1  ValidRatio  HR@10  NDCG@10".
std::string format_table(const std::string& model, const std::string& split, const Metrics& m);

}  // namespace sbtrec::eval
