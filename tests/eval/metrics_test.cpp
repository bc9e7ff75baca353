// Metrics: HR@1 / NDCG@10 arithmetic and tie handling, on a model whose scores we set by hand.
#include "sbtrec/eval/metrics.h"

#include <cmath>

#include "../data/grouplens_fixture.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/encoder/evaluate.h"
#include "sbtrec/common/error.h"

using namespace sbtrec;

namespace {
data::Dataset tiny_dataset(const test::TempDir& dir) {
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  return data::load_dataset(opt);
}
}  // namespace

TEST(Metrics, AccumulatorArithmetic) {
  eval::MetricsAccumulator acc;
  acc.add_candidate_case(true, true);
  acc.add_full_rank(0);
  acc.add_candidate_case(false, true);
  acc.add_full_rank(2);
  acc.add_candidate_case(false, false);
  acc.add_full_rank(10);  // outside the top 10
  acc.add_candidate_case(true, true);
  acc.add_full_rank(9);
  auto m = acc.finalize();
  EXPECT_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.hr1.value(), 0.5);
  EXPECT_DOUBLE_EQ(m.valid_ratio.value(), 0.75);  // over all cases, not valid ones
  EXPECT_DOUBLE_EQ(m.hr10.value(), 0.75);
  EXPECT_NEAR(m.ndcg10.value(), (1.0 + 1.0 / std::log2(4.0) + 1.0 / std::log2(11.0)) / 4, 1e-12);
}

TEST(Metrics, EncoderEvaluationUsesCandidatesAndCountsTiesAsMisses) {
  test::TempDir dir;
  const auto ds = tiny_dataset(dir);
  EncoderOptions mo;
  mo.hidden_size = 4;
  auto enc = encoder::make_encoder(mo, ds.num_items);
  torch::NoGradGuard ng;
  // s_fc = 0 makes all logits equal: every candidate ties with the target -> HR@1 must be 0.
  enc->named_parameters()["s_fc.weight"].zero_();
  enc->named_parameters()["s_fc.bias"].zero_();
  auto cands = data::make_candidates(ds, data::Split::kTest, 10, 1);
  auto m = encoder::evaluate_encoder(*enc, ds, data::Split::kTest, cands, mo.max_len, 8);
  EXPECT_EQ(m.n, 1);
  EXPECT_EQ(m.hr1.value(), 0.0);
  EXPECT_EQ(m.hr10.value(), 0.0);  // 19 other items tie with the target
  // A bias that favours only the target makes it rank first everywhere.
  enc->named_parameters()["s_fc.bias"][ds.test[0].target] = 1.0;
  m = encoder::evaluate_encoder(*enc, ds, data::Split::kTest, cands, mo.max_len, 8);
  EXPECT_EQ(m.hr1.value(), 1.0);
  EXPECT_EQ(m.ndcg10.value(), 1.0);
  EXPECT_EQ(m.valid_ratio.value(), 1.0);
}

TEST(Metrics, UnmeasuredMetricsAreAbsentNotZero) {
  eval::MetricsAccumulator acc;
  acc.add_candidate_case(true, true);
  acc.add_candidate_case(true, false);  // an invalid output is never a hit
  auto m = acc.finalize();
  EXPECT_DOUBLE_EQ(m.hr1.value(), 0.5);
  EXPECT_FALSE(m.hr10.has_value());
  EXPECT_FALSE(m.ndcg10.has_value());
  const auto j = m.to_json();
  EXPECT_FALSE(j.contains("hr@10"));
  EXPECT_FALSE(j.contains("ndcg@10"));
  EXPECT_TRUE(j.contains("valid_ratio"));
  const auto table = eval::format_table("llm", "test", m);
  EXPECT_NE(table.find(" -"), std::string::npos) << table;
  EXPECT_EQ(table.find("0.0000"), std::string::npos) << table;
}

TEST(Metrics, DivergedScoresAndBadCandidateSetsAreErrors) {
  test::TempDir dir;
  const auto ds = tiny_dataset(dir);
  EncoderOptions mo;
  mo.hidden_size = 4;
  auto enc = encoder::make_encoder(mo, ds.num_items);
  auto cands = data::make_candidates(ds, data::Split::kTest, 10, 1);
  {
    torch::NoGradGuard ng;
    enc->named_parameters()["s_fc.bias"][0] = std::numeric_limits<float>::quiet_NaN();
  }
  EXPECT_THROW(encoder::evaluate_encoder(*enc, ds, data::Split::kTest, cands, mo.max_len, 8), EvalError);
  {
    torch::NoGradGuard ng;
    enc->named_parameters()["s_fc.bias"][0] = 0.0;
  }
  // Two cases whose candidate sets differ in size (the heap overflow of an earlier version).
  const std::vector<data::Sample> two = {ds.test[0], ds.test[0]};
  auto unequal = std::vector<data::CandidateSet>{cands[0], cands[0]};
  unequal[1].items.push_back(unequal[1].items[0]);
  try {
    eval::check_candidates(two, unequal, ds.num_items, "test");
    FAIL() << "unequal candidate sets must be rejected";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("test sample 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(eval::check_candidates(two, {cands[0], cands[0]}, ds.num_items, "test"), 11);
  auto no_target = cands;
  no_target[0].items[(size_t)no_target[0].target_index] = (no_target[0].items[0] + 1) % (int32_t)ds.num_items;
  if (no_target[0].items[(size_t)no_target[0].target_index] == ds.test[0].target) no_target[0].items[(size_t)no_target[0].target_index] += 1;
  EXPECT_THROW(encoder::evaluate_encoder(*enc, ds, data::Split::kTest, no_target, mo.max_len, 8), DataError);
  auto outside = cands;
  outside[0].items[(size_t)(outside[0].target_index == 0 ? 1 : 0)] = (int32_t)ds.num_items;
  EXPECT_THROW(encoder::evaluate_encoder(*enc, ds, data::Split::kTest, outside, mo.max_len, 8), DataError);
  std::vector<data::CandidateSet> none;
  EXPECT_THROW(encoder::evaluate_encoder(*enc, ds, data::Split::kTest, none, mo.max_len, 8), DataError);
}
