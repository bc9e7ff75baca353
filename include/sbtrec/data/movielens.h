// MovieLens-100K from the raw GroupLens files (u.data, u.item) under the LLaRA protocol:
// ratings >= min_rating; users ordered by their first kept timestamp (ties: user id); split 8:1:1 by
// cut points int(0.8 N), int(0.9 N); items per user by timestamp (ties: file order); val/test users
// give one sample (the last item), train users one sample per position.
#pragma once
#include <string>

#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

Dataset load_movielens(const DataOptions& opt);

// Writes a synthetic dataset in GroupLens format (u.data, u.item, u.info) with planted sequential
// structure: each user walks a ring of items with small random steps, so the next item is
// predictable from the last few. Used by the quickstart when no real data is present.
struct SyntheticOptions {
  int num_users = 943;
  int num_items = 1682;
  int min_len = 20, max_len = 120;
  uint64_t seed = 7;
};
void write_synthetic_grouplens(const std::string& dir, const SyntheticOptions& opt);

}  // namespace sbtrec::data
