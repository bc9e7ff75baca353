// Recommendation metrics. HR@1 over candidate sets = correct / all cases (LLaRA's published
// definition); ValidRatio = cases whose output names exactly one candidate / all cases; HR@10 and
// NDCG@10 rank the target among all items (ties counted against the target); HR@5 and NDCG@5 rank it
// among its candidates (SBT-Rec's likelihood evaluation, where ValidRatio is 1 by construction). A metric that was not
// measured (HR@10 of a generating LLM, say) is absent: never reported as 0. eval/ depends on data/ only.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"

namespace sbtrec::eval {

struct Metrics {
  int64_t n = 0;
  std::optional<double> hr1, valid_ratio, hr10, ndcg10, hr5, ndcg5;
  // By JSON name ("hr@1", "valid_ratio", "hr@10", "ndcg@10", "hr@5", "ndcg@5"); nullopt when absent or unknown.
  std::optional<double> get(const std::string& name) const;
  // {"n": .., and each measured metric}; absent metrics are not keys.
  nlohmann::json to_json() const;
  // The inverse of to_json (other keys ignored).
  static Metrics from_json(const nlohmann::json& j);
};

// The part of a prediction record (predictions*.jsonl) that describes the case, whoever scored it:
// user, candidates and their titles, target and its title, history and its titles (item ids as in the
// dataset's own files), case index, split, the noise applied (eval.noise, when any) and `source`.
nlohmann::json case_record(const data::Dataset& ds, data::Split split, int64_t index, const data::CandidateSet& cs,
                           const std::string& source);

// Accumulates per-case outcomes; finalize() divides by the number of cases. Candidate metrics
// (HR@1, ValidRatio) and full-ranking metrics (HR@10, NDCG@10) are present only when cases of
// that kind were added.
struct MetricsAccumulator {
  int64_t n = 0, hits1 = 0, valid = 0, ranked = 0, candidate_ranked = 0;
  double hits10 = 0, ndcg10 = 0, hits5 = 0, ndcg5 = 0;
  void add_candidate_case(bool hit, bool valid_output);
  // rank: number of items ranked above the target (0 = best).
  void add_full_rank(int64_t rank);
  // A case scored by ranking its candidates: rank = candidates ranked above the target (0 = best,
  // ties against the target). Counts as a valid case whose HR@1 hit is rank 0, and adds HR@5 / NDCG@5.
  void add_candidate_rank(int64_t rank);
  Metrics finalize() const;
};

// Rejects candidate sets that do not fit `samples`: a different count, sets of unequal size, a
// target that is missing or not at target_index, or item ids outside [0, num_items). Throws
// DataError naming the split and the sample. Returns the candidate count C.
int64_t check_candidates(const std::vector<data::Sample>& samples, const std::vector<data::CandidateSet>& candidates,
                         int64_t num_items, const std::string& split);

// A small fixed-width table: "model  split  n  HR@1  ValidRatio  HR@10  NDCG@10"; "-" marks absent metrics.
std::string format_table(const std::string& model, const std::string& split, const Metrics& m);

}  // namespace sbtrec::eval
