// Seeded candidate sets (see candidates.h).
#include "sbtrec/data/candidates.h"

#include <random>
#include <unordered_set>

#include "sbtrec/common/error.h"

namespace sbtrec::data {
namespace {

// splitmix64: decorrelates (seed, split, index) into one generator seed.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<CandidateSet> make_candidates(const Dataset& ds, Split split, int num_negatives, uint64_t seed) {
  const auto& samples = ds.split(split);
  std::vector<CandidateSet> out;
  out.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    std::unordered_set<int32_t> excluded(s.history.begin(), s.history.end());
    excluded.insert(s.target);
    const int64_t available = ds.num_items - (int64_t)excluded.size();
    if (available < num_negatives)
      throw DataError(std::string(split_name(split)) + " sample " + std::to_string(i) + ": only " +
                      std::to_string(available) + " items are outside its history, fewer than eval.num_negatives=" +
                      std::to_string(num_negatives));
    std::mt19937_64 rng(mix(mix(mix(seed) ^ (uint64_t)split) ^ (uint64_t)i));
    std::uniform_int_distribution<int32_t> pick(0, (int32_t)ds.num_items - 1);
    CandidateSet c;
    c.items.push_back(s.target);
    while ((int)c.items.size() < num_negatives + 1) {
      const int32_t item = pick(rng);
      if (excluded.insert(item).second) c.items.push_back(item);
    }
    std::shuffle(c.items.begin(), c.items.end(), rng);
    c.target_index = (int)(std::find(c.items.begin(), c.items.end(), s.target) - c.items.begin());
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace sbtrec::data
