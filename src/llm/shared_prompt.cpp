// Answers after a shared prompt, packed in one row (see shared_prompt.h).
#include "sbtrec/llm/shared_prompt.h"

#include "sbtrec/common/error.h"

namespace sbtrec::llm {

torch::Tensor shared_prompt_logprobs(LlamaForCausalLMImpl& model, const torch::Tensor& prompt_embeds,
                                     const std::vector<int64_t>& prompt_lengths,
                                     const std::vector<std::vector<std::vector<int64_t>>>& answers) {
  const int64_t B = prompt_embeds.size(0), E = prompt_embeds.size(2);
  TORCH_CHECK(prompt_embeds.dim() == 3 && (int64_t)prompt_lengths.size() == B && (int64_t)answers.size() == B,
              "shared_prompt_logprobs: prompt_embeds [B, P, E] with B prompt lengths and answer lists");
  const int64_t J = B ? (int64_t)answers[0].size() : 0;
  const auto dev = prompt_embeds.device();
  std::vector<int64_t> length((size_t)B);
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK((int64_t)answers[(size_t)b].size() == J, "shared_prompt_logprobs: every row needs ", J, " answers");
    TORCH_CHECK(prompt_lengths[(size_t)b] >= 1 && prompt_lengths[(size_t)b] <= prompt_embeds.size(1),
                "shared_prompt_logprobs: prompt length ", prompt_lengths[(size_t)b], " of row ", b);
    length[(size_t)b] = prompt_lengths[(size_t)b];
    for (const auto& a : answers[(size_t)b]) {
      TORCH_CHECK(!a.empty(), "shared_prompt_logprobs: an empty answer in row ", b);
      length[(size_t)b] += (int64_t)a.size();
    }
    T = std::max(T, length[(size_t)b]);
  }
  // The packed rows: prompt, answer 0, answer 1, ..., padding; positions restart after the prompt for
  // every answer; visibility: the prompt causally, each answer the prompt and itself causally.
  auto pos = torch::zeros({B, T}, torch::kInt64);           // [B, T]
  auto mask = torch::zeros({B, T}, torch::kInt64);          // [B, T]
  auto vis = torch::zeros({B, T, T}, torch::kBool);         // [B, T, T]
  std::vector<int64_t> sel_row, sel_pos, target, segment;   // one per answer token: predictor, token, (b, j)
  std::vector<torch::Tensor> rows;
  auto pa = pos.accessor<int64_t, 2>();
  auto ma = mask.accessor<int64_t, 2>();
  auto va = vis.accessor<bool, 3>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = prompt_lengths[(size_t)b];
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < P; ++t) {
      pa[b][t] = t, ma[b][t] = 1;
      for (int64_t s = 0; s <= t; ++s) va[b][t][s] = true;
    }
    int64_t at = P;
    for (int64_t j = 0; j < J; ++j) {
      const auto& a = answers[(size_t)b][(size_t)j];
      for (int64_t m = 0; m < (int64_t)a.size(); ++m) {
        const int64_t t = at + m;
        pa[b][t] = P + m, ma[b][t] = 1;
        for (int64_t s = 0; s < P; ++s) va[b][t][s] = true;
        for (int64_t s = at; s <= t; ++s) va[b][t][s] = true;
        sel_row.push_back(b);
        sel_pos.push_back(m == 0 ? P - 1 : t - 1);  // the last prompt token predicts every answer's first
        target.push_back(a[(size_t)m]);
        segment.push_back(b * J + j);
        ids.push_back(a[(size_t)m]);
      }
      at += (int64_t)a.size();
    }
    auto answer_embeds = model.model->embed_tokens(torch::tensor(ids, torch::kInt64).to(dev));  // [sum |a|, E]
    auto row = torch::cat({prompt_embeds[b].narrow(0, 0, P), answer_embeds.to(prompt_embeds.scalar_type())});  // [L_b, E]
    if (row.size(0) < T) row = torch::cat({row, torch::zeros({T - row.size(0), E}, row.options())});
    rows.push_back(row);
  }
  ForwardInputs in;
  in.inputs_embeds = torch::stack(rows);  // [B, T, E]
  in.attention_mask = mask.to(dev);
  in.position_ids = pos.to(dev);
  in.visibility = vis.to(dev);
  auto h = model.model(in);  // [B, T, D]
  auto i64 = [&](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64).to(dev); };
  auto hs = h.index({i64(sel_row), i64(sel_pos)});                          // [M, D]
  auto logp = torch::log_softmax(model.lm_head(hs).to(torch::kFloat32), -1);  // [M, V]
  auto tok = logp.gather(1, i64(target).unsqueeze(1)).squeeze(1);             // [M]
  return torch::zeros({B * J}, tok.options()).index_add(0, i64(segment), tok).view({B, J});  // [B, J]
}

}  // namespace sbtrec::llm
