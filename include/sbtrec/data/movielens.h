// MovieLens-100K from the raw GroupLens files (u.data, u.item) under the LLaRA protocol:
// ratings >= min_rating; users ordered by their first kept timestamp (ties: user id); split 8:1:1 by
// cut points int(0.8 N), int(0.9 N); items per user by timestamp (ties: file order); val/test users
// give one sample (the last item), train users one sample per position.
#pragma once
#include <string>
#include <vector>

#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

Dataset load_movielens(const DataOptions& opt);

// Writes a synthetic dataset in GroupLens format (u.data, u.item, u.info) with planted sequential
// structure. numbered titles (the default, used by the quickstart when no real data is present): each
// user walks one ring of all items with steps of +1..+3, and each title numbers its item, so the text
// itself reveals the ring. random titles (the behaviour-signal benchmark): items lie on rings of
// `ring_size` placed by a seeded permutation, a user steps +1 along the ring of the last item with
// probability `follow` and jumps to a random item otherwise, and every title is two random
// pseudo-words, none a substring of another: the next item follows from behaviour alone.
enum class SyntheticTitles { kNumbered, kRandom };
struct SyntheticOptions {
  SyntheticTitles titles = SyntheticTitles::kNumbered;
  int num_users = 943;
  int num_items = 1682;
  int min_len = 20, max_len = 120;
  int ring_size = 20;    // random titles: items per ring (num_items must be a multiple)
  double follow = 0.9;   // random titles: probability of the +1 step along the ring
  uint64_t seed = 7;
};
// The benchmark's defaults for random titles: 2,000 users, 600 items on 30 rings of 20, 10-40 items each.
SyntheticOptions random_title_defaults();
// `n` distinct two-word titles of random pseudo-words, none a case-insensitive substring of another.
std::vector<std::string> random_titles(int n, uint64_t seed);
void write_synthetic_grouplens(const std::string& dir, const SyntheticOptions& opt);

}  // namespace sbtrec::data
