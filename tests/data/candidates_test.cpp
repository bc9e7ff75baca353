// Candidate sets: size, target inside, no history item, distinct items, determinism.
#include "sbtrec/data/candidates.h"

#include <set>

#include "grouplens_fixture.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/movielens.h"

using namespace sbtrec;
using namespace sbtrec::data;

namespace {
Dataset synthetic(const test::TempDir& dir) {
  SyntheticOptions so;
  so.num_users = 80;
  so.num_items = 200;
  write_synthetic_grouplens(dir / "syn", so);
  DataOptions opt;
  opt.root = dir / "syn";
  return load_dataset(opt);
}
}  // namespace

TEST(Candidates, Invariants) {
  test::TempDir dir;
  Dataset ds = synthetic(dir);
  for (Split split : {Split::kVal, Split::kTest, Split::kTrain}) {
    const auto& samples = ds.split(split);
    auto cands = make_candidates(ds, split, 20, 123);
    ASSERT_EQ(cands.size(), samples.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto& c = cands[i];
      ASSERT_EQ(c.items.size(), 21u);
      EXPECT_EQ(c.items[c.target_index], samples[i].target);
      EXPECT_EQ(std::set<int32_t>(c.items.begin(), c.items.end()).size(), 21u);
      for (int32_t item : c.items) {
        EXPECT_GE(item, 0);
        EXPECT_LT(item, ds.num_items);
        if (item != samples[i].target)
          EXPECT_EQ(std::count(samples[i].history.begin(), samples[i].history.end(), item), 0);
      }
    }
  }
}

TEST(Candidates, DeterministicPerSeedAndVariedAcrossSeeds) {
  test::TempDir dir;
  Dataset ds = synthetic(dir);
  auto a = make_candidates(ds, Split::kTest, 19, 7);
  auto b = make_candidates(ds, Split::kTest, 19, 7);
  auto c = make_candidates(ds, Split::kTest, 19, 8);
  ASSERT_EQ(a.size(), b.size());
  int differ = 0, target_first = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].items, b[i].items);
    differ += a[i].items != c[i].items;
    target_first += a[i].target_index == 0;
  }
  EXPECT_GT(differ, (int)a.size() / 2);
  EXPECT_LT(target_first, (int)a.size() / 2);  // the target's position is shuffled
  EXPECT_EQ(a[0].items.size(), 20u);
}

TEST(Candidates, TooFewItemsIsAClearError) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  Dataset ds = load_dataset(opt);
  try {
    make_candidates(ds, Split::kTest, 19, 1);  // 20 items, 4 of them in the sample
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("eval.num_negatives=19"), std::string::npos) << e.what();
  }
  EXPECT_EQ(make_candidates(ds, Split::kTest, 16, 1)[0].items.size(), 17u);
}
