// Candidate sets: size, target inside, no history item, distinct items, determinism; the documented
// algorithm pinned by exact lists, recomputed by the Python mirror (scripts/sbtrec_io.py), and exported.
#include "sbtrec/data/candidates.h"

#include <nlohmann/json.hpp>
#include <set>

#include "grouplens_fixture.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/movielens.h"

using namespace sbtrec;
using namespace sbtrec::data;

namespace {
Sample sample(std::vector<int32_t> history, int32_t target) {
  Sample s;
  s.history = std::move(history);
  s.target = target;
  return s;
}

// 12 items; the last sample leaves exactly num_negatives = 4 items free, so most draws are rejected.
Dataset pinned_input() {
  Dataset ds;
  ds.num_items = 12;
  for (int32_t i = 0; i < 12; ++i) ds.raw_item_ids.push_back(100 + i);
  ds.test = {sample({0, 1, 2}, 3), sample({5, 6, 7, 8, 9, 10}, 11), sample({4}, 0)};
  ds.val = ds.test;
  ds.train = {sample({0, 1, 2, 3, 4, 5, 6}, 7)};
  return ds;
}

std::vector<std::vector<int32_t>> item_lists(const std::vector<CandidateSet>& cands) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& c : cands) out.push_back(c.items);
  return out;
}

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

// The algorithm of candidates.h, pinned: these lists must never change (published figures depend on
// them). The same split and sample index in another split give other lists.
TEST(Candidates, PinnedLists) {
  const Dataset ds = pinned_input();
  using Lists = std::vector<std::vector<int32_t>>;
  EXPECT_EQ(item_lists(make_candidates(ds, Split::kTest, 4, 2024)), (Lists{{11, 9, 8, 7, 3}, {3, 1, 2, 4, 11}, {7, 0, 2, 9, 5}}));
  EXPECT_EQ(item_lists(make_candidates(ds, Split::kVal, 4, 2024)), (Lists{{9, 8, 3, 6, 11}, {0, 11, 4, 2, 1}, {0, 3, 8, 1, 5}}));
  const auto train = make_candidates(ds, Split::kTrain, 4, 2024);
  EXPECT_EQ(item_lists(train), (Lists{{8, 7, 10, 11, 9}}));
  EXPECT_EQ(train[0].target_index, 1);
}

// scripts/sbtrec_io.py's candidate_lists recomputes every list bit for bit: a 200-item synthetic
// dataset (all splits, 19 and 20 negatives, a seed above 2^63) and the tight pinned input.
TEST(Candidates, PythonMirrorDrawsTheSameLists) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const Dataset syn = synthetic(dir);
  const Dataset tight = pinned_input();
  struct Case { const Dataset* ds; Split split; int negatives; uint64_t seed; };
  const std::vector<Case> cases = {{&syn, Split::kTrain, 19, 2024}, {&syn, Split::kVal, 20, 7},
                                   {&syn, Split::kTest, 19, 0xfedcba9876543210ull}, {&tight, Split::kTest, 4, 2024},
                                   {&tight, Split::kTrain, 4, 1}};
  nlohmann::json in = nlohmann::json::array();
  std::vector<std::vector<std::vector<int32_t>>> want;
  for (const auto& c : cases) {
    nlohmann::json samples = nlohmann::json::array();
    for (const auto& s : c.ds->split(c.split)) samples.push_back({s.history, s.target});
    in.push_back({{"samples", samples}, {"num_items", c.ds->num_items}, {"negatives", c.negatives},
                  {"seed", c.seed}, {"split", split_name(c.split)}});
    want.push_back(item_lists(make_candidates(*c.ds, c.split, c.negatives, c.seed)));
  }
  test::write_text(dir / "in.json", in.dump());
  auto r = test::run_python(dir, R"(
import json
from sbtrec_io import candidate_lists
cases = json.load(open(sys.argv[1]))
out = [candidate_lists(c["samples"], c["num_items"], c["negatives"], c["seed"], c["split"]) for c in cases]
json.dump(out, open(sys.argv[2], "w"))
)", dir / "in.json" + " " + dir / "out.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto got = nlohmann::json::parse(test::read_text(dir / "out.json"));
  ASSERT_EQ(got.size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k)
    EXPECT_EQ(got[k].get<std::vector<std::vector<int32_t>>>(), want[k]) << "case " << k;
}

TEST(Candidates, ExportAddsTheCandidateColumnInRawIds) {
  const Dataset ds = pinned_input();
  test::TempDir dir;
  const auto cands = make_candidates(ds, Split::kTrain, 4, 2024);
  export_samples(ds, Split::kTrain, dir / "train.tsv", &cands);
  EXPECT_EQ(test::read_text(dir / "train.tsv"), "0\t100 101 102 103 104 105 106\t107\t108 107 110 111 109\n");
  try {
    export_samples(ds, Split::kTest, dir / "test.tsv", &cands);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("1 candidate sets for 3 test samples"), std::string::npos) << e.what();
  }
}
