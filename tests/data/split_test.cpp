// The LLaRA-protocol split on a hand-computed synthetic dataset, and the real MovieLens-100K counts.
#include <algorithm>
#include <cctype>
#include <map>

#include "grouplens_fixture.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/data/movielens.h"

using namespace sbtrec;
using namespace sbtrec::data;

namespace {
// Raw ids of a sample, for readable comparisons.
std::pair<std::vector<int64_t>, int64_t> raw(const Dataset& ds, const Sample& s) {
  std::vector<int64_t> h;
  for (auto i : s.history) h.push_back(ds.raw_item_ids[i]);
  return {h, ds.raw_item_ids[s.target]};
}
using Raw = std::pair<std::vector<int64_t>, int64_t>;
}  // namespace

TEST(Split, HandComputedTinyDataset) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  Dataset ds = load_dataset(opt);
  EXPECT_EQ(ds.num_items, 20);
  EXPECT_EQ(ds.num_users, 10);        // user 11 has no rating >= 3
  EXPECT_EQ(ds.num_interactions, 25);  // 27 rows minus two low ratings
  // Train users in order 3, 5, 2, 1, 4, 6, 7, 8; only users 3 and 5 have >= 4 items.
  ASSERT_EQ(ds.train.size(), 3u);
  EXPECT_EQ(ds.train[0].user, 3);
  EXPECT_EQ(raw(ds, ds.train[0]), (Raw{{11, 12, 13}, 14}));
  EXPECT_EQ(raw(ds, ds.train[1]), (Raw{{11, 12, 13, 14}, 15}));
  EXPECT_EQ(ds.train[2].user, 5);
  EXPECT_EQ(raw(ds, ds.train[2]), (Raw{{16, 17, 18}, 19}));
  ASSERT_EQ(ds.val.size(), 1u);
  EXPECT_EQ(ds.val[0].user, 9);
  EXPECT_EQ(raw(ds, ds.val[0]), (Raw{{1, 2, 3, 4}, 5}));
  ASSERT_EQ(ds.test.size(), 1u);
  EXPECT_EQ(ds.test[0].user, 10);
  EXPECT_EQ(raw(ds, ds.test[0]), (Raw{{7, 6, 8}, 9}));  // equal timestamps keep file order
  EXPECT_EQ(ds.titles[0], "The Movie 1");
}

TEST(Split, HistoryWindowAndMinimumAreConfigurable) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  opt.max_history = 3;
  opt.min_history = 2;
  Dataset ds = load_dataset(opt);
  EXPECT_EQ(raw(ds, ds.val[0]), (Raw{{2, 3, 4}, 5}));
  // user 3 now gives 3 samples (histories of 2, 3 and the last 3 of 4 items), user 5 two, user 1 none (2 items).
  ASSERT_EQ(ds.train.size(), 5u);
  EXPECT_EQ(raw(ds, ds.train[0]), (Raw{{11, 12}, 13}));
  EXPECT_EQ(raw(ds, ds.train[2]), (Raw{{12, 13, 14}, 15}));
}

TEST(Split, RealMovieLensMatchesLLaRACounts) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  DataOptions opt;
  opt.root = test::shared("data/ml-100k");
  Dataset ds = load_dataset(opt);
  EXPECT_EQ(ds.num_items, 1682);
  EXPECT_EQ(ds.num_users, 943);
  EXPECT_EQ(ds.num_interactions, 27145 + 34174 + 21201);  // ratings 3, 4 and 5 (SOURCE.md)
  EXPECT_EQ(ds.val.size(), 94u);
  EXPECT_EQ(ds.test.size(), 95u);
  for (const auto* split : {&ds.train, &ds.val, &ds.test})
    for (const auto& s : *split) {
      ASSERT_GE(s.history.size(), 3u);
      ASSERT_LE(s.history.size(), 10u);
    }
  EXPECT_FALSE(duplicate_titles(ds).empty());  // ML-100K has repeated titles
}

TEST(Split, SyntheticGroupLensIsLoadableAndSequential) {
  test::TempDir dir;
  SyntheticOptions so;
  so.num_users = 50;
  so.num_items = 100;
  write_synthetic_grouplens(dir / "syn", so);
  DataOptions opt;
  opt.root = dir / "syn";
  Dataset ds = load_dataset(opt);
  EXPECT_EQ(ds.num_items, 100);
  EXPECT_EQ(ds.num_users, 50);
  // Planted structure: most next items are 1-3 steps after the last history item on the ring.
  int near = 0;
  for (const auto& s : ds.train) {
    const int d = ((s.target - s.history.back()) % 100 + 100) % 100;
    near += (d >= 1 && d <= 3);
  }
  EXPECT_GT(near, (int)ds.train.size() * 6 / 10);
}

TEST(Split, RandomTitleSynthesisHidesTheRingsFromTheText) {
  test::TempDir dir;
  SyntheticOptions so = random_title_defaults();
  so.num_users = 300;
  so.num_items = 120;
  write_synthetic_grouplens(dir / "syn", so);
  DataOptions opt;
  opt.root = dir / "syn";
  Dataset ds = load_dataset(opt);
  ASSERT_EQ(ds.num_items, 120);
  // Titles: distinct, two words, none a (case-insensitive) substring of another, no digits.
  std::vector<std::string> lower;
  for (const auto& t : ds.titles) {
    std::string l = t;
    for (auto& c : l) c = (char)std::tolower((unsigned char)c);
    EXPECT_EQ(std::count(t.begin(), t.end(), ' '), 1) << t;
    EXPECT_EQ(std::find_if(t.begin(), t.end(), [](char c) { return std::isdigit((unsigned char)c); }), t.end()) << t;
    lower.push_back(l);
  }
  for (size_t i = 0; i < lower.size(); ++i)
    for (size_t j = 0; j < lower.size(); ++j)
      if (i != j) EXPECT_EQ(lower[i].find(lower[j]), std::string::npos) << ds.titles[i] << " / " << ds.titles[j];
  // Behaviour: each item has one dominant successor (its ring neighbour), which is not id + 1.
  std::map<int32_t, std::map<int32_t, int>> next;
  for (const auto& s : ds.train) ++next[s.history.back()][s.target];
  int dominant = 0, total = 0, plus_one = 0;
  for (const auto& [item, targets] : next) {
    int best = 0, best_item = -1;
    for (const auto& [t, k] : targets) {
      total += k;
      if (k > best) best = k, best_item = t;
    }
    dominant += best;
    plus_one += best_item == (item + 1) % 120;
  }
  EXPECT_GT(dominant, total * 8 / 10);
  EXPECT_LT(plus_one, (int)next.size() / 4) << "ring order must not follow the ids";
  // Same seed, same files.
  write_synthetic_grouplens(dir / "again", so);
  EXPECT_EQ(read_file(dir / "syn/u.item"), read_file(dir / "again/u.item"));
  EXPECT_EQ(read_file(dir / "syn/u.data"), read_file(dir / "again/u.data"));
  // Items must fill whole rings.
  so.num_items = 121;
  EXPECT_THROW(write_synthetic_grouplens(dir / "bad", so), ConfigError);
}

TEST(Export, OneLinePerSampleWithRawIds) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  Dataset ds = load_dataset(opt);
  export_samples(ds, Split::kTrain, dir / "train.tsv");
  EXPECT_EQ(test::read_text(dir / "train.tsv"), "3\t11 12 13\t14\n3\t11 12 13 14\t15\n5\t16 17 18\t19\n");
  export_samples(ds, Split::kTest, dir / "test.tsv");
  EXPECT_EQ(test::read_text(dir / "test.tsv"), "10\t7 6 8\t9\n");
}
