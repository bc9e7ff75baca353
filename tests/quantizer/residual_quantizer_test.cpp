// The residual quantizer's contract: indices are the exact per-level argmin, e_rq is the sum of the
// chosen rows and its gradient reaches those rows only, k-means++ is deterministic and each added
// level lowers the error, the VQ losses have their stated value and routing, dead codes are re-seeded.
// Legend: N vectors, L levels, K codes, D width.
#include <gtest/gtest.h>

#include <limits>

#include "sbtrec/common/error.h"
#include "sbtrec/quantizer/residual_quantizer.h"

using namespace sbtrec;
using namespace sbtrec::quantizer;

namespace {

QuantizerOptions opts(int levels, int codes) {
  QuantizerOptions o;
  o.levels = levels;
  o.codes = codes;
  return o;
}

ResidualQuantizer random_quantizer(int L, int K, int64_t D, uint64_t seed) {
  ResidualQuantizer q(opts(L, K), D);
  torch::manual_seed(seed);
  q->load_codebooks(torch::randn({L, K, D}), "test");
  return q;
}

// Points around a few well separated centers, so k-means has structure to find.
torch::Tensor clustered(int64_t N, int64_t D, uint64_t seed) {
  torch::manual_seed(seed);
  auto centers = 4 * torch::randn({8, D});                             // [8, D]
  auto which = torch::randint(0, 8, {N}, torch::kInt64);              // [N]
  return centers.index_select(0, which) + torch::randn({N, D});       // [N, D]
}

// Per level: the residual's exact nearest code by an explicit float64 sum over coordinates, ties to
// the lowest index; the residual update in float32 as the quantizer does it.
torch::Tensor brute_force_indices(const torch::Tensor& codebooks, const torch::Tensor& x) {
  const int64_t L = codebooks.size(0), K = codebooks.size(1), N = x.size(0), D = x.size(1);
  auto out = torch::empty({N, L}, torch::kInt64);
  auto r = x.clone();
  for (int64_t l = 0; l < L; ++l) {
    auto cb = codebooks[l].contiguous();
    auto ra = r.accessor<float, 2>();
    auto ca = cb.accessor<float, 2>();
    for (int64_t n = 0; n < N; ++n) {
      double best = std::numeric_limits<double>::infinity();
      int64_t arg = -1;
      for (int64_t k = 0; k < K; ++k) {
        double d = 0;
        for (int64_t j = 0; j < D; ++j) d += ((double)ra[n][j] - ca[k][j]) * ((double)ra[n][j] - ca[k][j]);
        if (d < best) best = d, arg = k;
      }
      out[n][l] = arg;
    }
    r = r - cb.index_select(0, out.select(1, l));
  }
  return out;
}

}  // namespace

TEST(ResidualQuantizer, IndicesEqualBruteForceArgminPerLevel) {
  struct Case { int L, K; int64_t D, N; };
  for (const auto& c : {Case{1, 4, 3, 50}, Case{2, 7, 5, 120}, Case{3, 16, 8, 200}, Case{4, 128, 64, 300}}) {
    auto q = random_quantizer(c.L, c.K, c.D, 7 + c.L);
    auto x = torch::randn({c.N, c.D}) * 2;
    auto idx = q->encode(x);
    ASSERT_EQ(idx.sizes(), (std::vector<int64_t>{c.N, c.L}));
    EXPECT_EQ(idx.scalar_type(), torch::kInt64);
    EXPECT_TRUE(torch::equal(idx, brute_force_indices(q->codebooks.detach(), x))) << "L " << c.L << " K " << c.K;
    EXPECT_TRUE(idx.ge(0).all().item<bool>() && idx.lt(c.K).all().item<bool>());
    EXPECT_TRUE(torch::equal(q->forward(x).indices, idx));  // forward's indices are encode's
  }
}

TEST(ResidualQuantizer, TiesGoToTheLowestIndex) {
  // Small integers: every distance is exact whatever the summation order, so the ties are real.
  ResidualQuantizer q(opts(1, 4), 2);
  q->load_codebooks(torch::tensor({1.f, 0.f, -1.f, 0.f, 1.f, 0.f, 0.f, 3.f}).view({1, 4, 2}), "test");
  auto x = torch::tensor({0.f, 0.f, 1.f, 0.f, -1.f, 0.f, 0.f, 2.f}).view({4, 2});
  auto idx = q->encode(x).squeeze(1);
  // (0,0): codes 0, 1, 2 at distance 1 -> 0; (1,0) equals codes 0 and 2 -> 0; (-1,0) -> 1; (0,2): code 3 at 1.
  EXPECT_EQ(idx[0].item<int64_t>(), 0);
  EXPECT_EQ(idx[1].item<int64_t>(), 0);
  EXPECT_EQ(idx[2].item<int64_t>(), 1);
  EXPECT_EQ(idx[3].item<int64_t>(), 3);
}

TEST(ResidualQuantizer, ERqIsTheSumOfTheChosenRows) {
  auto q = random_quantizer(3, 10, 6, 3);
  auto x = torch::randn({40, 6});
  auto out = q->forward(x);
  auto cb = q->codebooks.detach();
  auto expected = torch::zeros({40, 6});
  for (int64_t n = 0; n < 40; ++n)
    for (int64_t l = 0; l < 3; ++l) expected[n] += cb[l][out.indices[n][l].item<int64_t>()];
  EXPECT_TRUE(torch::allclose(out.e_rq, expected, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(q->decode(out.indices), out.e_rq, 0, 0));
  EXPECT_TRUE(out.e_rq.requires_grad());
  EXPECT_EQ(out.loss.item<double>(), 0.0);  // both loss weights default to 0: no loss, no graph
  EXPECT_FALSE(out.loss.requires_grad());
}

TEST(ResidualQuantizer, GradientReachesExactlyTheChosenRows) {
  const int L = 3, K = 12;
  const int64_t D = 5, N = 30;
  auto q = random_quantizer(L, K, D, 11);
  auto x = torch::randn({N, D});
  auto out = q->forward(x);
  auto upstream = torch::randn({N, D});
  (out.e_rq * upstream).sum().backward();
  auto grad = q->codebooks.grad();
  ASSERT_TRUE(grad.defined());
  auto expected = torch::zeros({L, K, D});
  auto chosen = torch::zeros({L, K}, torch::kBool);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t l = 0; l < L; ++l) {
      const int64_t k = out.indices[n][l].item<int64_t>();
      expected[l][k] += upstream[n];  // several vectors on one code: their gradients add up
      chosen[l][k] = true;
    }
  EXPECT_TRUE(torch::allclose(grad, expected, 1e-5, 1e-6));
  auto unchosen = grad.masked_select(chosen.logical_not().unsqueeze(2).expand({L, K, D}));
  ASSERT_GT(unchosen.numel(), 0);
  EXPECT_TRUE(unchosen.eq(0).all().item<bool>());  // exactly zero, not merely small
}

TEST(ResidualQuantizer, ReconstructionErrorFallsAsLevelsGrow) {
  auto x = clustered(600, 16, 5);
  std::vector<double> errors;
  QuantizerStats four;
  for (int L = 1; L <= 4; ++L) {
    ResidualQuantizer q(opts(L, 16), 16);
    q->init_kmeans_pp(x, 99);
    const auto s = q->stats(x);
    errors.push_back(s.relative_error);
    if (L == 4) four = s;
  }
  for (size_t i = 1; i < errors.size(); ++i) EXPECT_LE(errors[i], errors[i - 1]) << "L " << i + 1;
  EXPECT_LT(errors.back(), errors.front());
  EXPECT_LT(errors.front(), 1.0);
  // Levels are fitted in order from one stream: a deeper quantizer's first levels are the shallower one.
  ASSERT_EQ(four.levels.size(), 4u);
  for (size_t l = 0; l < 4; ++l) EXPECT_DOUBLE_EQ(four.levels[l].relative_error, errors[l]) << "level " << l + 1;
}

TEST(ResidualQuantizer, InitIsDeterministicForASeed) {
  auto x = clustered(300, 8, 1);
  ResidualQuantizer a(opts(3, 16), 8), b(opts(3, 16), 8), c(opts(3, 16), 8);
  a->init_kmeans_pp(x, 123);
  torch::manual_seed(555);  // torch's global generator plays no part
  b->init_kmeans_pp(x, 123);
  c->init_kmeans_pp(x, 124);
  EXPECT_TRUE(torch::equal(a->codebooks, b->codebooks));
  EXPECT_FALSE(torch::equal(a->codebooks, c->codebooks));
  EXPECT_TRUE(torch::isfinite(a->codebooks).all().item<bool>());
}

TEST(ResidualQuantizer, InitNeedsAtLeastKVectorsAndSurvivesDuplicates) {
  ResidualQuantizer q(opts(2, 8), 4);
  try {
    q->init_kmeans_pp(torch::randn({5, 4}), 1);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("quantizer.codes=8"), std::string::npos) << e.what();
  }
  // 20 vectors, 3 distinct: level 1 has fewer distinct residuals than codes; the extra codes repeat
  // existing ones and stay unused, and reconstruction is exact.
  auto x = torch::tensor({1.f, 0.f, 0.f, 0.f, 0.f, 2.f, 0.f, 0.f, 0.f, 0.f, 3.f, 0.f}).view({3, 4}).repeat({7, 1}).slice(0, 0, 20);
  q->init_kmeans_pp(x, 1);
  EXPECT_TRUE(torch::isfinite(q->codebooks).all().item<bool>());
  const auto s = q->stats(x);
  EXPECT_EQ(s.levels[0].used, 3);
  EXPECT_LT(s.relative_error, 1e-6);
  EXPECT_EQ(s.distinct_tuples, 3);
  EXPECT_EQ(s.collisions, 17);
}

TEST(ResidualQuantizer, StatsCountUsagePerplexityAndCollisions) {
  ResidualQuantizer q(opts(2, 4), 2);
  // Level 1: codes 0 and 1 at (+-10, 0); level 2: (0, +-1). Vectors hit two codes per level evenly.
  q->load_codebooks(torch::tensor({10.f, 0.f, -10.f, 0.f, 50.f, 50.f, 60.f, 60.f,  //
                                   0.f, 1.f, 0.f, -1.f, 70.f, 70.f, 80.f, 80.f}).view({2, 4, 2}), "test");
  auto x = torch::tensor({10.f, 1.f, 10.f, -1.f, -10.f, 1.f, -10.f, 1.f}).view({4, 2});
  const auto s = q->stats(x);
  ASSERT_EQ(s.levels.size(), 2u);
  EXPECT_EQ(s.levels[0].used, 2);
  EXPECT_DOUBLE_EQ(s.levels[0].usage, 0.5);
  EXPECT_NEAR(s.levels[0].perplexity, 2.0, 1e-12);
  EXPECT_NEAR(s.levels[1].perplexity, std::exp(-(0.75 * std::log(0.75) + 0.25 * std::log(0.25))), 1e-12);
  EXPECT_NEAR(s.levels[0].relative_error, std::sqrt(4.0 / 404.0), 1e-9);
  EXPECT_NEAR(s.relative_error, 0.0, 1e-12);
  EXPECT_EQ(s.distinct_tuples, 3);
  EXPECT_EQ(s.collisions, 1);  // the last two vectors share (1, 0)
  const auto groups = shared_tuples(q->encode(x));
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0], (std::vector<int64_t>{2, 3}));
  const auto j = s.to_json();
  EXPECT_EQ(j["levels"].size(), 2u);
  EXPECT_EQ(j["collisions"], 1);
}

TEST(ResidualQuantizer, LossesHaveTheirValueAndRouting) {
  const int L = 2, K = 6;
  const int64_t D = 4, N = 25;
  QuantizerOptions o = opts(L, K);
  o.codebook_loss = 1.5;
  o.commitment_loss = 0.25;
  ResidualQuantizer q(o, D);
  torch::manual_seed(4);
  q->load_codebooks(torch::randn({L, K, D}), "test");
  auto x = torch::randn({N, D}).requires_grad_(true);
  auto out = q->forward(x);
  // The residual each level quantized and its chosen code, recomputed by hand.
  auto cb = q->codebooks.detach();
  auto r = x.detach().clone();
  double value = 0;
  auto grad_cb = torch::zeros({L, K, D}), grad_x = torch::zeros({N, D});
  for (int64_t l = 0; l < L; ++l) {
    auto e = cb[l].index_select(0, out.indices.select(1, l));  // [N, D]
    const double mse = (r - e).pow(2).mean().item<double>();
    value += (1.5 + 0.25) * mse;
    grad_cb[l].index_add_(0, out.indices.select(1, l), 1.5 * 2 * (e - r) / (double)(N * D));
    grad_x += 0.25 * 2 * (r - e) / (double)(N * D);  // r_l = x - earlier codes (stop-gradient)
    r = r - e;
  }
  EXPECT_NEAR(out.loss.item<double>(), value, 1e-5 * value);
  out.loss.backward();
  EXPECT_TRUE(torch::allclose(q->codebooks.grad(), grad_cb, 1e-4, 1e-7));
  EXPECT_TRUE(torch::allclose(x.grad(), grad_x, 1e-4, 1e-7));
  // The codebook loss only reaches chosen rows.
  auto used = torch::zeros({L, K}, torch::kBool);
  for (int64_t l = 0; l < L; ++l) used[l].index_fill_(0, out.indices.select(1, l), true);
  EXPECT_TRUE(q->codebooks.grad().masked_select(used.logical_not().unsqueeze(2).expand({L, K, D})).eq(0).all().item<bool>());
}

// Dead codes: counted in training-mode forwards, judged once per window of optimizer steps
// (end_step) on the counts summed over the ranks, re-seeded from the pool's worst-reconstructed vectors,
// the same on every rank; the counters survive a save and restore.
TEST(ResidualQuantizer, DeadCodesAreReseededFromThePoolAtTheWindowsEnd) {
  QuantizerOptions o = opts(1, 3);
  o.dead_codes.enabled = true;
  o.dead_codes.window = 2;
  const auto books = torch::tensor({0.f, 0.f, 1.f, 1.f, 100.f, 100.f}).view({1, 3, 2});
  auto x = torch::tensor({0.1f, 0.f, 1.f, 0.9f}).view({2, 2});                // chooses codes 0 and 1
  auto pool = torch::tensor({0.1f, 0.f, 1.f, 0.9f, -5.f, 0.f}).view({3, 2});  // (-5, 0) fits worst
  auto make = [&] {
    ResidualQuantizer q(o, 2);
    q->load_codebooks(books, "test");
    return q;
  };
  auto q = make();
  q->eval();
  q->forward(x);  // eval mode: not counted
  q->train();
  q->forward(x);
  EXPECT_EQ(q->end_step(pool), 0);  // step 1 of 2
  EXPECT_EQ(q->codebooks[0][2][0].item<float>(), 100.f);
  EXPECT_EQ(q->end_step(pool), 1);  // the window's end: code 2 was never chosen
  EXPECT_TRUE(torch::equal(q->codebooks[0][2], torch::tensor({-5.f, 0.f})));
  EXPECT_TRUE(torch::equal(q->codebooks[0][1], torch::tensor({1.f, 1.f})));
  EXPECT_EQ(q->encode(pool)[2][0].item<int64_t>(), 2);

  // Two ranks, each seeing half the batch: alone, rank a would also re-seed code 1 (rank b chose it);
  // summed over the ranks it re-seeds code 2 only, as one process seeing both.
  auto a = make(), b = make();
  a->forward(x.slice(0, 0, 1));
  b->forward(x.slice(0, 1, 2));
  const auto b_counts = b->dead_code_state();
  auto sum = [&](torch::Tensor& u) { u[0] += torch::tensor(b_counts["usage"][0].get<std::vector<int64_t>>()); };
  a->end_step(pool, sum);
  EXPECT_EQ(a->end_step(pool, sum), 1);
  EXPECT_TRUE(torch::equal(a->codebooks, q->codebooks));

  // The counters resume exactly: a quantizer restored mid-window ends it as the original does.
  auto c = make(), d = make();
  c->forward(x.slice(0, 0, 1));
  c->end_step(pool);
  d->restore_dead_code_state(c->dead_code_state());
  EXPECT_EQ(d->dead_code_state(), c->dead_code_state());
  EXPECT_EQ(c->end_step(pool), 2);  // codes 1 and 2 unused
  EXPECT_EQ(d->end_step(pool), 2);
  EXPECT_TRUE(torch::equal(c->codebooks, d->codebooks));

  // A window in which the quantizer was never used (a kind the prompts do not carry) resets nothing.
  auto e = make();
  e->end_step(pool);
  EXPECT_EQ(e->end_step(pool), 0);
  EXPECT_TRUE(torch::equal(e->codebooks, books));
}

TEST(ResidualQuantizer, ShapesAreCheckedWithTheSourceNamed) {
  ResidualQuantizer q(opts(3, 8), 4);
  try {
    q->load_codebooks(torch::zeros({3, 8, 5}), "file.safetensors key 'codebooks'");
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("file.safetensors key 'codebooks'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3, 8, 4]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(q->load_codebooks(torch::full({3, 8, 4}, NAN), "x"), CheckpointError);
  EXPECT_THROW(q->encode(torch::zeros({2, 5})), ConfigError);
  EXPECT_THROW(q->decode(torch::zeros({2, 2}, torch::kInt64)), ConfigError);
}

TEST(ResidualQuantizer, CollisionRanksNumberEachTuplesRowsInRowOrder) {
  auto idx = torch::tensor({0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 5, 5}, torch::kInt64).view({6, 2});  // [6, 2]
  auto r = collision_ranks(idx);
  EXPECT_TRUE(torch::equal(r, torch::tensor({0, 0, 1, 2, 1, 0}, torch::kInt64))) << r;
  // The stats name the share of vectors on an earlier vector's tuple and the most crowded tuple.
  QuantizerOptions o = opts(1, 2);
  ResidualQuantizer q(o, 1);
  q->load_codebooks(torch::tensor({0.0f, 10.0f}).view({1, 2, 1}), "test");
  auto st = q->stats(torch::tensor({0.1f, 0.2f, 0.3f, 9.0f}).view({4, 1}));  // tuples (0) x 3, (1)
  EXPECT_EQ(st.collisions, 2);
  EXPECT_DOUBLE_EQ(st.collision_rate, 0.5);
  EXPECT_EQ(st.largest_shared_tuple, 3);
}

TEST(ResidualQuantizer, NormalizeQuantizesUnitVectors) {
  auto x = clustered(200, 6, 3);  // [N, D]
  QuantizerOptions o = opts(2, 8);
  o.normalize = true;
  ResidualQuantizer qn(o, 6), q(opts(2, 8), 6);
  qn->init_kmeans_pp(x, 4);
  auto unit = x / x.norm(2, 1, true);
  q->init_kmeans_pp(unit, 4);
  EXPECT_TRUE(torch::equal(qn->codebooks, q->codebooks));  // k-means on x / ||x||
  // A row's codes do not depend on its length; e_rq approximates the unit vector.
  auto scaled = x * torch::linspace(0.1, 10.0, 200).unsqueeze(1);
  EXPECT_TRUE(torch::equal(qn->encode(scaled), q->encode(unit)));
  EXPECT_TRUE(torch::equal(qn->forward(x).indices, q->encode(unit)));
  EXPECT_NEAR(qn->stats(x).relative_error, q->stats(unit).relative_error, 1e-12);
}

TEST(ResidualQuantizer, IndexCodebookIsSizedByTheLargestGroupAndItsRowZeroIsZero) {
  QuantizerOptions o = opts(1, 2);
  o.collisions = Collisions::kIndex;
  ResidualQuantizer q(o, 3);
  ASSERT_TRUE(q->has_index());
  EXPECT_EQ(q->index_codebook.sizes(), (std::vector<int64_t>{1, 3}));
  auto param = q->index_codebook;  // the registered parameter keeps its identity when resized
  auto ranks = torch::tensor({0, 1, 0, 2, 3}, torch::kInt64);
  auto residual = torch::full({5, 3}, 0.5f);
  q->make_index_codebook(ranks, residual, 9);
  EXPECT_EQ(q->index_codebook.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(param.is_same(q->named_parameters()["index_codebook"]));
  EXPECT_EQ(param.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(torch::equal(q->index_codebook[0], torch::zeros({3})));
  EXPECT_GT(q->index_codebook[1].abs().sum().item<double>(), 0);
  // Deterministic for a seed; ranks past the last row take the last row; gradient reaches the rows used.
  ResidualQuantizer again(o, 3);
  again->make_index_codebook(ranks, residual, 9);
  EXPECT_TRUE(torch::equal(again->index_codebook, q->index_codebook));
  auto rows = q->extra_rows(torch::tensor({2, 7}, torch::kInt64));
  EXPECT_TRUE(torch::equal(rows[1], q->index_codebook[3].detach()));
  rows.sum().backward();
  EXPECT_TRUE(torch::equal(q->index_codebook.grad().sum(1), torch::tensor({0.0f, 0.0f, 3.0f, 3.0f})));
  EXPECT_THROW(q->load_index_codebook(torch::zeros({2, 4}), "file"), CheckpointError);
  q->load_index_codebook(torch::ones({6, 3}), "file");
  EXPECT_EQ(param.sizes(), (std::vector<int64_t>{6, 3}));
  ResidualQuantizer keep(opts(1, 2), 3);
  EXPECT_FALSE(keep->has_index());
}
