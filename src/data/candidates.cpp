// Seeded candidate sets (the algorithm is spelled out in candidates.h).
#include "sbtrec/data/candidates.h"

#include <algorithm>
#include <unordered_set>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"

namespace sbtrec::data {
std::vector<CandidateSet> make_candidates(const Dataset& ds, Split split, int num_negatives, uint64_t seed) {
  if (num_negatives < 0)
    throw DataError("eval.num_negatives=" + std::to_string(num_negatives) + " is negative; use 0 or more");
  const auto& samples = ds.split(split);
  std::vector<CandidateSet> out;
  out.reserve(samples.size());
  const Purpose purpose = split == Split::kTrain ? Purpose::kCandidatesTrain
                          : split == Split::kVal ? Purpose::kCandidatesVal
                                                 : Purpose::kCandidatesTest;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    std::unordered_set<int32_t> excluded(s.history.begin(), s.history.end());
    excluded.insert(s.target);
    const int64_t available = ds.num_items - (int64_t)excluded.size();
    if (available < num_negatives)
      throw DataError(std::string(split_name(split)) + " sample " + std::to_string(i) + ": only " +
                      std::to_string(available) + " items are outside its history, fewer than eval.num_negatives=" +
                      std::to_string(num_negatives));
    CounterStream rng(stream_key(seed, purpose, i));
    CandidateSet c;
    c.items.push_back(s.target);
    while ((int)c.items.size() < num_negatives + 1) {
      const auto item = (int32_t)rng.below((uint64_t)ds.num_items);
      if (excluded.insert(item).second) c.items.push_back(item);
    }
    shuffle(c.items, rng);
    c.target_index = (int)(std::find(c.items.begin(), c.items.end(), s.target) - c.items.begin());
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace sbtrec::data
