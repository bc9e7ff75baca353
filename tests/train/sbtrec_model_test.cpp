// SBT-Rec's forward pass on a tiny random Llama: slot rows of inputs_embeds are the aligned MBSR
// vectors of their items (or user), every other row the token embedding; one backward of the answer
// loss reaches exactly the chosen codebook rows, both aligner layers and the LoRA weights (SBS-AO);
// the continuous (w/o HDSD) path and the shuffled-token control.
#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/nn/parameters.h"
#include "sbtrec/train/sbtrec_model.h"

using namespace sbtrec;

namespace {

struct Tiny {
  quantizer::QuantizerOptions qo;
  train::SbtRecModel model{nullptr};
  prompt::PromptBatch batch;
  torch::Tensor users;  // [B, Z]

  explicit Tiny(bool quantize, bool user = true, double codebook_loss = 0, double commitment_loss = 0) {
    torch::manual_seed(5);
    auto c = llm::llama_tiny();
    auto lm = llm::LlamaForCausalLM(c);
    llm::LoraOptions lo;
    lo.dropout = 0;
    lm->add_lora(lo);
    const int64_t N = 40, D = 12, Z = 10;
    auto items = torch::randn({N, D});
    qo.levels = 2;
    qo.codes = 8;
    qo.codebook_loss = codebook_loss;
    qo.commitment_loss = commitment_loss;
    quantizer::Hdsd hdsd{nullptr};
    if (quantize) {
      hdsd = quantizer::Hdsd(qo, D, Z);
      hdsd->items->init_kmeans_pp(items, 1);
      if (hdsd->user) hdsd->user->init_kmeans_pp(torch::randn({30, Z}), 2);
    }
    model = train::SbtRecModel(lm, items, hdsd, user ? Z : 0, aligner::AlignerOptions{});
    prompt::EncodedPrompt a, b;
    a.ids = {1, 5, 6, 7, 8, 9, 10, 11, 12};
    a.prompt_length = 6;
    a.slots = {{2, prompt::SlotKind::kHistory, 3}, {4, prompt::SlotKind::kCandidate, 17}};
    if (user) a.slots.push_back({5, prompt::SlotKind::kUser, -1});
    b.ids = {1, 20, 21, 22, 23};
    b.prompt_length = 3;
    b.slots = {{1, prompt::SlotKind::kCandidate, 3}};
    batch = prompt::collate({a, b}, 0, false);
    users = torch::randn({2, Z});
  }
};

}  // namespace

TEST(SbtRecModel, SlotRowsAreAlignedMbsrVectorsAndTheRestTokenEmbeddings) {
  Tiny t(true);
  torch::NoGradGuard ng;
  auto& m = *t.model;
  auto embeds = m.inputs_embeds(t.batch, t.users);  // [2, 9, E]
  auto plain = m.llm->model->embed_tokens(t.batch.input_ids);
  auto x = m.item_vectors.index_select(0, torch::tensor({3, 17}, torch::kInt64));
  auto idx = m.hdsd->items->encode(x);                     // [2, L]
  auto want = m.item_aligner->forward(m.hdsd->items->decode(idx));  // [2, E]
  // The model aligns all slots of the batch in one matrix product, the check two rows: other GEMM
  // shapes, other rounding (AVX-512 kernels split the sums differently), hence an absolute floor.
  auto close = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-6); };
  EXPECT_TRUE(close(embeds[0][2], want[0])) << (embeds[0][2] - want[0]).abs().max().item<double>();
  EXPECT_TRUE(close(embeds[0][4], want[1])) << (embeds[0][4] - want[1]).abs().max().item<double>();
  EXPECT_TRUE(close(embeds[1][1], want[0]));  // the same item, the same token in another prompt
  auto u = m.user_aligner->forward(m.hdsd->user->decode(m.hdsd->user->encode(t.users.narrow(0, 0, 1))));
  EXPECT_TRUE(close(embeds[0][5], u[0]));
  for (int64_t p : {0, 1, 3, 6, 7, 8}) EXPECT_TRUE(torch::equal(embeds[0][p], plain[0][p])) << p;
  // user slots need user vectors
  EXPECT_THROW(m.inputs_embeds(t.batch), ConfigError);
}

TEST(SbtRecModel, OneBackwardReachesChosenCodeRowsAlignersAndLora) {
  Tiny t(true);
  auto& m = *t.model;
  auto loss = m.loss(t.batch, t.users);
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  auto x = m.item_vectors.index_select(0, torch::tensor({3, 17}, torch::kInt64));
  auto idx = m.hdsd->items->encode(x);  // [2, L]
  auto g = m.hdsd->items->codebooks.grad();  // [L, K, D]
  ASSERT_TRUE(g.defined());
  for (int64_t l = 0; l < g.size(0); ++l)
    for (int64_t k = 0; k < g.size(1); ++k) {
      const bool chosen = idx[0][l].item<int64_t>() == k || idx[1][l].item<int64_t>() == k;
      const double norm = g[l][k].abs().sum().item<double>();
      if (chosen) EXPECT_GT(norm, 0) << l << " " << k;
      else EXPECT_EQ(norm, 0) << l << " " << k;
    }
  EXPECT_GT(m.hdsd->user->codebooks.grad().abs().sum().item<double>(), 0);
  for (auto* a : {&m.item_aligner, &m.user_aligner})
    for (const auto& p : (*a)->parameters()) EXPECT_GT(p.grad().abs().sum().item<double>(), 0);
  int lora_b = 0;
  for (const auto& p : m.llm->named_parameters())
    if (p.key().find("lora_B") != std::string::npos && p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
      ++lora_b;
  EXPECT_EQ(lora_b, (int)m.llm->lora_layers().size());
  // frozen: the encoder's vectors and the base weights
  EXPECT_FALSE(m.item_vectors.requires_grad());
  EXPECT_FALSE(m.llm->model->embed_tokens->weight.requires_grad());
}

TEST(SbtRecModel, ContinuousVectorsAndShuffledTokens) {
  Tiny t(false, false);
  torch::NoGradGuard ng;
  auto& m = *t.model;
  auto embeds = m.inputs_embeds(t.batch);
  auto want = m.item_aligner->forward(m.item_vectors.index_select(0, torch::tensor({3, 17}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(embeds[0][2], want[0]));
  EXPECT_TRUE(torch::allclose(embeds[0][4], want[1]));
  auto perm = torch::randperm(40, torch::kInt64);
  m.set_item_permutation(perm);
  auto shuffled = m.inputs_embeds(t.batch);
  auto moved = m.item_aligner->forward(m.item_vectors.index_select(0, perm.index_select(0, torch::tensor({3}, torch::kInt64))));
  EXPECT_TRUE(torch::allclose(shuffled[0][2], moved[0]));
}

TEST(SbtRecModel, SharedAlignerMapsUserVectorsLikeItemsAndScalesTokensToTheEmbeddingRows) {
  torch::manual_seed(5);
  auto lm = llm::LlamaForCausalLM(llm::llama_tiny());
  lm->add_lora(llm::LoraOptions{});
  const int64_t N = 40, D = 12;
  auto items = torch::randn({N, D}) * 4.0;
  aligner::AlignerOptions o;
  o.shared = true;
  o.input_norm = aligner::InputNorm::kUnit;
  o.output_scale = aligner::OutputScale::kEmbeddings;
  train::SbtRecModel m(lm, items, quantizer::Hdsd{nullptr}, D, o);
  EXPECT_FALSE(m->user_aligner) << "aligner.shared: one aligner";
  torch::NoGradGuard ng;
  // a user vector equal to an item's row (at any scale) gets that item's token
  auto u = m->user_embeddings(items.index_select(0, torch::tensor({7}, torch::kInt64)) * 3.0);  // [1, E]
  auto t = m->item_embeddings(torch::tensor({7}, torch::kInt64));                              // [1, E]
  EXPECT_LT((u - t).abs().max().item<double>(), 1e-5);
  // tokens as long as the embedding rows are on average
  const double rows = lm->model->embed_tokens->weight.norm(2, 1).mean().item<double>();
  EXPECT_NEAR(t.norm().item<double>(), rows, 1e-4 * rows);
  // one aligner needs one width
  EXPECT_THROW(train::SbtRecModel(lm, items, quantizer::Hdsd{nullptr}, D + 1, o), ConfigError);

  // aligner.user_as_item: the user slot carries the token of the item nearest to the user vector in
  // cosine, exactly; under the shuffled control, nearest among the rows the tokens are made of.
  o.user_as_item = true;
  train::SbtRecModel snap(lm, items, quantizer::Hdsd{nullptr}, D, o);
  prompt::EncodedPrompt p;
  p.ids = {1, 5, 6, 7};
  p.prompt_length = 4;
  p.slots = {{1, prompt::SlotKind::kCandidate, 3}, {3, prompt::SlotKind::kUser, -1}};
  auto batch = prompt::collate({p}, 0, false);
  auto user = items.index_select(0, torch::tensor({11}, torch::kInt64)) * 2.0 + 0.01 * torch::randn({1, D});  // [1, D]
  auto embeds = snap->inputs_embeds(batch, user);  // [1, 4, E]
  EXPECT_TRUE(torch::equal(embeds[0][3], snap->item_embeddings(torch::tensor({11}, torch::kInt64))[0]));
  auto perm = torch::roll(torch::arange(N), 1);  // item i's token is made of row i - 1
  snap->set_item_permutation(perm);
  embeds = snap->inputs_embeds(batch, user);
  // row 11 is item 12's under this permutation: the user token is item 12's token (made of row 11)
  EXPECT_TRUE(torch::equal(embeds[0][3], snap->item_embeddings(torch::tensor({12}, torch::kInt64))[0]));
}

// quantizer.codebook_loss reaches SBS-AO's loss: the total rises by exactly w x (per kind, the sum over
// levels of mean (sg(r_l) - e_l)^2), and the codebooks' gradients by exactly that term's gradient,
// both computed here by hand from the codebooks.
TEST(SbtRecModel, QuantizerLossesReachTheTrainingLoss) {
  const double w = 0.7;
  Tiny plain(true), weighted(true, true, w, 0.3);  // the same seed: the same weights
  ASSERT_TRUE(torch::equal(plain.model->hdsd->items->codebooks, weighted.model->hdsd->items->codebooks));
  // Per kind: sum over levels of mean (sg(r_l) - e_l)^2 as a function of a leaf copy of the codebooks.
  auto term = [](const torch::Tensor& C, torch::Tensor x) {  // C [L, K, D] leaf, x [S, D]
    auto total = torch::zeros({});
    auto r = x.clone();
    for (int64_t l = 0; l < C.size(0); ++l) {
      auto idx = torch::cdist(r, C[l].detach()).argmin(1);  // [S]
      auto e = C[l].index_select(0, idx);                  // [S, D]
      total = total + (r - e).pow(2).mean();
      r = r - e.detach();
    }
    return total;
  };
  auto& m = *weighted.model;
  auto Ci = m.hdsd->items->codebooks.detach().clone().requires_grad_(true);
  auto Cu = m.hdsd->user->codebooks.detach().clone().requires_grad_(true);
  // The batch's item slots: items 3 and 17 (prompt a), 3 (prompt b); its one user slot: row 0.
  auto xi = m.item_vectors.index_select(0, torch::tensor({3, 17, 3}, torch::kInt64));
  auto xu = weighted.users.index_select(0, torch::tensor({0}, torch::kInt64));
  auto ti = term(Ci, xi), tu = term(Cu, xu);
  (ti + tu).backward();
  // Commitment moves only inputs that need a gradient; the item and user vectors are frozen, so its
  // term is the same sum as the codebook term's value (sg on the other side).
  const double want = (w + 0.3) * (ti + tu).item<double>();

  auto l0 = plain.model->loss(plain.batch, plain.users);
  auto l1 = m.loss(weighted.batch, weighted.users);
  EXPECT_NEAR(l1.item<double>() - l0.item<double>(), want, 1e-5) << "with " << l1.item<double>() << ", without "
                                                                  << l0.item<double>();
  l0.backward();
  l1.backward();
  auto gi = m.hdsd->items->codebooks.grad() - plain.model->hdsd->items->codebooks.grad();
  auto gu = m.hdsd->user->codebooks.grad() - plain.model->hdsd->user->codebooks.grad();
  EXPECT_TRUE(torch::allclose(gi, w * Ci.grad(), 1e-4, 1e-6)) << (gi - w * Ci.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(gu, w * Cu.grad(), 1e-4, 1e-6)) << (gu - w * Cu.grad()).abs().max();
}

// The trainer's "trainable params" line counts every group SBS-AO trains: codebooks, aligners and
// LoRA (it once counted LoRA alone).
TEST(SbtRecModel, CollisionsIndexAddsEachItemsRankRowAndTrainsIt) {
  torch::manual_seed(5);
  auto lm = llm::LlamaForCausalLM(llm::llama_tiny());
  const int64_t N = 40, D = 12;
  auto items = torch::randn({N, D});
  quantizer::QuantizerOptions qo;
  qo.levels = 1;
  qo.codes = 4;  // 40 items on 4 tuples
  qo.inputs = quantizer::QuantizerInputs::kItems;
  qo.collisions = quantizer::Collisions::kIndex;
  quantizer::Hdsd hdsd(qo, D, 1);
  hdsd->items->init_kmeans_pp(items, 1);
  auto ranks = quantizer::collision_ranks(hdsd->items->encode(items));  // [N]
  hdsd->items->make_index_codebook(ranks, torch::randn({N, D}), 3);
  train::SbtRecModel model(lm, items, hdsd, 0, aligner::AlignerOptions{});
  auto ids = torch::arange(N, torch::kInt64);
  auto e = model->item_embeddings(ids);  // [N, E]
  auto idx = hdsd->items->encode(items);
  auto want = model->item_aligner->forward(hdsd->items->decode(idx) + hdsd->items->index_codebook.index_select(0, ranks));
  EXPECT_TRUE(torch::allclose(e, want, 1e-5, 1e-6));
  // Items on one tuple get distinct tokens; the rank-0 item of a tuple keeps its plain MBSR token.
  EXPECT_EQ(std::get<0>(torch::unique_dim(e.detach(), 0)).size(0), N);
  e.sum().backward();
  auto g = hdsd->items->index_codebook.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<double>(), 0);
}

TEST(SbtRecModel, TrainableReportCountsCodebooksAlignersAndLora) {
  Tiny t(true);
  auto& m = *t.model;
  int64_t want = 0;
  for (const auto& p : m.parameters())
    if (p.requires_grad()) want += p.numel();
  const int64_t lora = [&] {
    int64_t n = 0;
    for (const auto& p : m.llm->parameters())
      if (p.requires_grad()) n += p.numel();
    return n;
  }();
  const int64_t others = m.hdsd->items->codebooks.numel() + m.hdsd->user->codebooks.numel() +
                         [&] {
                           int64_t n = 0;
                           for (const auto& p : m.item_aligner->parameters()) n += p.numel();
                           for (const auto& p : m.user_aligner->parameters()) n += p.numel();
                           return n;
                         }();
  EXPECT_EQ(want, lora + others);
  EXPECT_GT(others, 0);
  EXPECT_NE(nn::trainable_report(m).find("trainable params: " + std::to_string(want) + " "), std::string::npos)
      << nn::trainable_report(m);
}
