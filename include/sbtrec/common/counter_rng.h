// Counter-based random numbers: every value is a pure function of (key, position), so draws are the
// same bits on every standard library, thread count and machine, and a Python script can recompute
// them (scripts/sbtrec_io.py). Used by the dropout masks (nn/) and the candidate sets (data/).
#pragma once
#include <cstdint>

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

}  // namespace sbtrec
