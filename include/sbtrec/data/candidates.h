// Candidate sets for evaluation: the target plus `num_negatives` distinct items drawn uniformly from
// the items that are neither in the history nor the target. Each sample's draw depends only on
// (seed, split, sample index), so every run and every model sees the same candidates (LLaRA re-draws
// on each access; we do not). The target's position in the list is random too.
#pragma once
#include <cstdint>
#include <vector>

#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

// The draw, exactly (integer-only, so it is the same on every platform and standard library;
// scripts/sbtrec_io.py `candidate_lists` recomputes it bit for bit; see common/counter_rng.h):
//  1. key = splitmix64(splitmix64(splitmix64(seed) ^ s) ^ i), with s = 0 train, 1 val, 2 test and
//     i the sample's index in its split; all arithmetic mod 2^64.
//  2. One stream per sample: value k = splitmix64(key + k * 0x9e3779b97f4a7c15), k = 0, 1, ...
//     below(n) takes values until one is >= 2^64 mod n and returns it mod n (exact uniform on [0, n)).
//  3. items = [target]; while fewer than num_negatives + 1: c = below(num_items); append c unless it
//     is in the history, is the target or was already drawn (then it is simply skipped).
//  4. Fisher-Yates on the same stream: for j = num_negatives down to 1, swap items[j] with
//     items[below(j + 1)].
struct CandidateSet {
  std::vector<int32_t> items;  // size num_negatives + 1, shuffled
  int target_index = 0;        // items[target_index] == sample.target
};

// Throws DataError naming the split and sample when fewer than num_negatives items lie outside it.
std::vector<CandidateSet> make_candidates(const Dataset& ds, Split split, int num_negatives, uint64_t seed);

}  // namespace sbtrec::data
