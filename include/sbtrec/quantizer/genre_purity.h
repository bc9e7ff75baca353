// Genre purity of HDSD's codes (issue 23, interpretability): do the items (or users) that share a code
// share a genre? For a grouping of members (one code each) and each member's genre set:
//   purity = sum over codes of max over genres g of (members of the code carrying g) / members,
// i.e. the share of members that carry their code's most common genre (members without genres left
// out). The same with the codes shuffled across the members (the code sizes and the genre mix kept)
// is the baseline: a purity means something only above it. Item codes: per level and for the full
// tuple, against the item's genres; user codes (training samples): per level, against the history's
// dominant genre (data/noise.h dominant_genres, the first).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "sbtrec/data/dataset.h"

namespace sbtrec::quantizer {

struct Purity {
  double purity = 0;                            // of the codes as assigned
  double shuffled_mean = 0, shuffled_sd = 0;    // over `shuffles` random reassignments
  int64_t members = 0, groups = 0;              // members with genres, distinct codes among them
  nlohmann::json to_json() const;
};

// `groups[i]` is member i's code, `genres[i]` its genre set (empty: left out); the shuffles are
// seeded (the stream of `seed`), so the baseline repeats.
Purity genre_purity(const std::vector<int64_t>& groups, const std::vector<std::vector<int>>& genres, int shuffles,
                    uint64_t seed);

// stats.json's "genre_purity": {"items": {"levels": [...], "tuple": ...}, "user": {"levels": [...]}}
// for the codes given (undefined tensors skipped); null when the dataset has no genres.
nlohmann::json genre_purity_stats(const data::Dataset& ds, const torch::Tensor& item_codes /* [N, L] */,
                                  const torch::Tensor& train_user_codes /* [S, L] */, uint64_t seed);

}  // namespace sbtrec::quantizer
