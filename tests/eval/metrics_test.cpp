// Metrics: HR@1 / NDCG@10 arithmetic and tie handling, on a model whose scores we set by hand.
#include "sbtrec/eval/metrics.h"

#include <cmath>

#include "../data/grouplens_fixture.h"
#include "sbtrec/data/candidates.h"

using namespace sbtrec;

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
  EXPECT_DOUBLE_EQ(m.hr1, 0.5);
  EXPECT_DOUBLE_EQ(m.valid_ratio, 0.75);  // over all cases, not valid ones
  EXPECT_DOUBLE_EQ(m.hr10, 0.75);
  EXPECT_NEAR(m.ndcg10, (1.0 + 1.0 / std::log2(4.0) + 1.0 / std::log2(11.0)) / 4, 1e-12);
}

TEST(Metrics, EncoderEvaluationUsesCandidatesAndCountsTiesAsMisses) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "ml");
  DataOptions opt;
  opt.root = dir / "ml";
  auto ds = data::load_dataset(opt);
  ModelOptions mo;
  mo.hidden_size = 4;
  auto enc = encoder::make_encoder(mo, ds.num_items);
  torch::NoGradGuard ng;
  // s_fc = 0 makes all logits equal: every candidate ties with the target -> HR@1 must be 0.
  enc->named_parameters()["s_fc.weight"].zero_();
  enc->named_parameters()["s_fc.bias"].zero_();
  auto cands = data::make_candidates(ds, data::Split::kTest, 10, 1);
  auto m = eval::evaluate_encoder(*enc, ds, data::Split::kTest, cands, mo.max_len, 8);
  EXPECT_EQ(m.n, 1);
  EXPECT_EQ(m.hr1, 0.0);
  EXPECT_EQ(m.hr10, 0.0);  // 19 other items tie with the target
  // A bias that favours only the target makes it rank first everywhere.
  enc->named_parameters()["s_fc.bias"][ds.test[0].target] = 1.0;
  m = eval::evaluate_encoder(*enc, ds, data::Split::kTest, cands, mo.max_len, 8);
  EXPECT_EQ(m.hr1, 1.0);
  EXPECT_EQ(m.ndcg10, 1.0);
  EXPECT_EQ(m.valid_ratio, 1.0);
}
