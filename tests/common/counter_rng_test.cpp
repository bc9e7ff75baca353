// The counter-based generator behind dropout masks and candidate sets: pinned to SplitMix64's
// published reference outputs, and the exact bounded draw (its rejection path included).
#include "sbtrec/common/counter_rng.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

using namespace sbtrec;

TEST(CounterRng, StreamIsTheReferenceSplitMix64Sequence) {
  // Vigna's splitmix64.c seeded with 1234567 (the values Rosetta Code lists for it).
  CounterStream s(1234567);
  const std::vector<uint64_t> want = {6457827717110365317ull, 3203168211198807973ull, 9817491932198370423ull,
                                      4593380528125082431ull, 16408922859458223821ull};
  for (uint64_t w : want) EXPECT_EQ(s.next(), w);
  EXPECT_EQ(splitmix64(1234567), want[0]);
}

TEST(CounterRng, BoundedDrawIsPinnedAndRejectsTheBiasedPart) {
  CounterStream small(99);
  std::vector<uint64_t> got;
  for (int k = 0; k < 8; ++k) got.push_back(small.below(10));
  EXPECT_EQ(got, (std::vector<uint64_t>{3, 4, 7, 7, 6, 9, 5, 5}));
  EXPECT_EQ(small.count(), 8u);  // 2^64 mod 10 = 6 values rejected out of 2^64: none here
  // n = 2^63 + 1 rejects the 2^63 - 1 lowest values, about half: 6 draws take 11 values.
  CounterStream big(99);
  got.clear();
  for (int k = 0; k < 6; ++k) got.push_back(big.below((1ull << 63) + 1));
  EXPECT_EQ(got, (std::vector<uint64_t>{6175226964866093818ull, 3152424238367765826ull, 4196489246895118786ull,
                                        416967549105596477ull, 962636047326253843ull, 661647608957124434ull}));
  EXPECT_EQ(big.count(), 11u);
  CounterStream one(5);
  EXPECT_EQ(one.below(1), 0u);
}

// One registry of stream purposes, all distinct: with seed == eval.candidate_seed the trainer's
// streams no longer draw what the validation / test candidate sets draw (they once shared the values
// 1 and 2: the epoch order of epoch i was the stream of validation case i's candidates).
TEST(CounterRng, StreamPurposesAreDistinctEvenWhenSeedsMeet) {
  std::set<uint64_t> values;
  for (Purpose p : kAllPurposes) EXPECT_TRUE(values.insert((uint64_t)p).second) << "purpose " << (uint64_t)p << " twice";
  const uint64_t seed = 2024;  // the run's seed equal to eval.candidate_seed
  std::set<uint64_t> keys;
  for (Purpose p : kAllPurposes)
    for (uint64_t counter : {0, 1, 2, 3}) EXPECT_TRUE(keys.insert(stream_key(seed, p, counter)).second);
  // The candidate purposes keep the values the Python mirror and every published candidate set use.
  EXPECT_EQ((uint64_t)Purpose::kCandidatesTrain, 0u);
  EXPECT_EQ((uint64_t)Purpose::kCandidatesVal, 1u);
  EXPECT_EQ((uint64_t)Purpose::kCandidatesTest, 2u);
}
