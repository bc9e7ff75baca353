// S-DPO's pieces: the loss against its formula and, with one rejected answer, DPO's sigmoid loss; the
// shared-prompt scoring of several answers against one forward per answer (values and gradients).
#include "../test_util.h"
#include "sbtrec/llm/shared_prompt.h"
#include "sbtrec/train/preference.h"

using namespace sbtrec;

TEST(Sdpo, LossIsTheSoftmaxFormulaAndDposSigmoidForOneRejected) {
  torch::manual_seed(1);
  auto pi = torch::randn({5, 4}, torch::requires_grad()), ref = torch::randn({5, 4});
  const double beta = 0.7;
  auto loss = train::sdpo_loss(pi, ref, beta);
  // -log sigmoid(-log sum_j exp(beta (r_j - r_0))), written out.
  auto r = pi.detach() - ref;
  double want = 0;
  for (int64_t b = 0; b < 5; ++b) {
    double sum = 0;
    for (int64_t j = 1; j < 4; ++j) sum += std::exp(beta * (r[b][j].item<double>() - r[b][0].item<double>()));
    want += -std::log(1.0 / (1.0 + std::exp(std::log(sum))));
  }
  EXPECT_NEAR(loss.item<double>(), want / 5, 1e-5);
  loss.backward();
  EXPECT_LT(pi.grad().select(1, 0).max().item<double>(), 0);  // raising the chosen answer lowers the loss
  EXPECT_GT(pi.grad().narrow(1, 1, 3).min().item<double>(), 0);
  // k = 1: TRL's DPO sigmoid loss, -logsigmoid(beta ((pi_c - pi_r) - (ref_c - ref_r))).
  auto p2 = pi.detach().narrow(1, 0, 2), r2 = ref.narrow(1, 0, 2);
  auto logits = (p2.select(1, 0) - p2.select(1, 1)) - (r2.select(1, 0) - r2.select(1, 1));
  auto dpo = -torch::log_sigmoid(beta * logits).mean();
  EXPECT_NEAR(train::sdpo_loss(p2, r2, beta).item<double>(), dpo.item<double>(), 1e-6);
  EXPECT_THROW(train::sdpo_loss(pi.narrow(1, 0, 1), ref.narrow(1, 0, 1), beta), c10::Error);
}

TEST(SharedPrompt, PackedAnswersEqualOneForwardPerAnswerWithGradients) {
  torch::manual_seed(2);
  auto c = llm::llama_tiny();
  llm::LlamaForCausalLM m(c);
  llm::LoraOptions lo;
  lo.r = 4;
  lo.dropout = 0;
  m->add_lora(lo);
  for (auto& l : m->lora_layers()) l->lora_B->weight.data().normal_(0, 0.1);
  m->train();
  const std::vector<int64_t> P = {6, 4};
  const std::vector<std::vector<std::vector<int64_t>>> answers = {{{5, 9, 2}, {7, 2}, {5, 11, 12, 2}},
                                                                   {{30, 2}, {31, 32, 2}, {33, 2}}};
  auto prompt = torch::randn({2, 6, c.hidden_size}, torch::requires_grad());
  auto w = torch::randn({2, 3});  // a weighted sum of the log-probabilities as the loss
  auto packed = llm::shared_prompt_logprobs(*m, prompt, P, answers);  // [2, 3]
  (packed * w).sum().backward();
  auto g_prompt = prompt.grad().clone();
  std::vector<torch::Tensor> g_lora;
  for (auto& l : m->lora_layers()) g_lora.push_back(l->lora_A->weight.grad().clone()), g_lora.push_back(l->lora_B->weight.grad().clone());
  // One forward per (row, answer): the prompt's real positions, then the answer, causal.
  prompt.mutable_grad().zero_();
  m->zero_grad();
  auto separate = torch::zeros({2, 3});
  torch::Tensor total = torch::zeros({});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 0; j < 3; ++j) {
      const auto& a = answers[(size_t)b][(size_t)j];
      auto ids = torch::tensor(a, torch::kInt64);
      llm::ForwardInputs in;
      in.inputs_embeds = torch::cat({prompt[b].narrow(0, 0, P[(size_t)b]), m->model->embed_tokens(ids.unsqueeze(0))[0]}).unsqueeze(0);
      auto logp = torch::log_softmax(m->forward(in)[0], -1);  // [P + |a|, V]
      auto lp = logp.narrow(0, P[(size_t)b] - 1, (int64_t)a.size()).gather(1, ids.unsqueeze(1)).sum();
      separate[b][j] = lp.item<double>();
      total = total + lp * w[b][j];
    }
  total.backward();
  EXPECT_LT((packed.detach() - separate).abs().max().item<double>(), 1e-5) << packed << separate;
  EXPECT_LT((g_prompt - prompt.grad()).abs().max().item<double>(), 1e-5);
  size_t i = 0;
  for (auto& l : m->lora_layers()) {
    EXPECT_LT((g_lora[i++] - l->lora_A->weight.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LT((g_lora[i++] - l->lora_B->weight.grad()).abs().max().item<double>(), 1e-5);
  }
  EXPECT_GT(g_prompt.abs().sum().item<double>(), 0);
}
