// Counter-based random numbers: every value is a pure function of (key, position), so draws are the
// same bits on every standard library, thread count and machine, and a Python script can recompute
// them (scripts/sbtrec_io.py). Used by the dropout masks (nn/), the candidate sets (data/), the prompt templates (prompt/) and the
// trainer's sample order (train/).
#pragma once
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace sbtrec {

// Golden-ratio increment of the SplitMix64 generator (Steele, Lea, Flood 2014).
inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

// SplitMix64's output function applied to x + gamma: a bijective 64-bit mix whose outputs pass BigCrush
// when x runs over a counter. Header-inline so the vectorised dropout clones inline it.
inline constexpr uint64_t splitmix64(uint64_t x) {
  x += kSplitMixGamma;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The SplitMix64 sequence started at `key`: value k is splitmix64(key + k * gamma) (mod 2^64).
class CounterStream {
 public:
  explicit CounterStream(uint64_t key) : key_(key) {}

  uint64_t next() { return splitmix64(key_ + (count_++) * kSplitMixGamma); }

  // Uniform in [0, n), n >= 1, exactly: values below 2^64 mod n are rejected (and the next one is
  // taken), so the accepted range holds a whole number of copies of [0, n) and `value % n` carries
  // no modulo bias. Rejection needs n to be a large share of 2^64 to matter; item counts never do.
  uint64_t below(uint64_t n) {
    const uint64_t rejected = (0 - n) % n;  // == 2^64 mod n
    uint64_t v = next();
    while (v < rejected) v = next();
    return v % n;
  }

  uint64_t count() const { return count_; }  // values consumed so far

 private:
  uint64_t key_;
  uint64_t count_ = 0;
};

// Every purpose of a seeded stream, in one registry: a stream is named by (seed, purpose, counter), so
// two uses sharing a value would draw the same numbers whenever their seeds meet (eval.candidate_seed
// == seed, say). Values are distinct (tests/common/counter_rng_test.cpp checks kAllPurposes); add a new
// use here, never a literal at the call site.
enum class Purpose : uint64_t {
  // data/: the evaluation candidate sets of each split, under eval.candidate_seed. Fixed values: the
  // Python mirror (scripts/sbtrec_io.py) and every published figure's candidate sets use them.
  kCandidatesTrain = 0,
  kCandidatesVal = 1,
  kCandidatesTest = 2,
  // data/noise.h: the items injected into evaluation histories (eval.noise), under eval.noise.seed.
  kNoiseVal = 0xd001,
  kNoiseTest = 0xd002,
  // quantizer/genre_purity.h: the shuffled baseline of genre purity, under the k-means seed.
  kPurityShuffle = 0xd101,
  // quantizer/residual_quantizer.h: the extra codebook's rows (quantizer.collisions: index), under the k-means seed.
  kIndexCodebook = 0xd102,
  // train/: under the run's seed.
  kEpochOrder = 0x5b01,       // the SBT-Rec trainer's sample order of an epoch
  kEpochCandidates = 0x5b02,  // the seed of an epoch's training candidate sets
  kStepDropout = 0x5b03,      // torch's generator at each (step, rank): dropout masks
  kCurriculum = 0x5b04,       // curriculum: whether a step is hybrid
  kShuffle = 0x5b05,          // the shuffled-token control's item permutation
  kRankDraws = 0x5b06,        // the encoder trainer's per-rank negatives and dropout
  kPreferenceNegatives = 0x5b07,  // dpo / sdpo: each case's rejected candidates
  // prompt/: under the run's seed.
  kTrainingTemplates = 0x7101,
  kEvaluationTemplates = 0x7102,
};
inline constexpr Purpose kAllPurposes[] = {
    Purpose::kCandidatesTrain, Purpose::kCandidatesVal,    Purpose::kCandidatesTest, Purpose::kEpochOrder,
    Purpose::kEpochCandidates, Purpose::kStepDropout,      Purpose::kCurriculum,     Purpose::kShuffle,
    Purpose::kRankDraws,       Purpose::kTrainingTemplates, Purpose::kEvaluationTemplates, Purpose::kNoiseVal,
    Purpose::kNoiseTest, Purpose::kPurityShuffle, Purpose::kIndexCodebook, Purpose::kPreferenceNegatives};

// The key of the stream that serves `counter` (an epoch, a step, a sample index) for `purpose` under
// `seed`: every seeded draw of the project is keyed this way, so each is a pure function of (seed,
// purpose, counter) and needs no generator state to resume.
inline constexpr uint64_t stream_key(uint64_t seed, Purpose purpose, uint64_t counter) {
  return splitmix64(splitmix64(splitmix64(seed) ^ (uint64_t)purpose) ^ counter);
}

// Fisher-Yates on `v` with draws from `rng`: for j = size-1 down to 1, swap v[j] and v[below(j + 1)].
template <class T>
void shuffle(std::vector<T>& v, CounterStream& rng) {
  for (size_t j = v.size(); j-- > 1;) std::swap(v[j], v[(size_t)rng.below((uint64_t)j + 1)]);
}

// A permutation of [0, n): shuffle of 0..n-1 with the stream of `key`.
inline std::vector<int64_t> permutation(uint64_t key, int64_t n) {
  std::vector<int64_t> p((size_t)n);
  std::iota(p.begin(), p.end(), 0);
  CounterStream rng(key);
  shuffle(p, rng);
  return p;
}

}  // namespace sbtrec
