// Candidate sets for evaluation: the target plus `num_negatives` distinct items drawn uniformly from
// the items that are neither in the history nor the target. Each sample's draw depends only on
// (seed, split, sample index), so every run and every model sees the same candidates (LLaRA re-draws
// on each access; we do not). The target's position in the list is random too.
#pragma once
#include <cstdint>
#include <vector>

#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

struct CandidateSet {
  std::vector<int32_t> items;  // size num_negatives + 1, shuffled
  int target_index = 0;        // items[target_index] == sample.target
};

std::vector<CandidateSet> make_candidates(const Dataset& ds, Split split, int num_negatives, uint64_t seed);

}  // namespace sbtrec::data
