// Encoder evaluation (see evaluate.h).
#include "sbtrec/encoder/evaluate.h"

#include "sbtrec/common/error.h"
#include "sbtrec/data/batch.h"

namespace sbtrec::encoder {

eval::Metrics evaluate_encoder(EncoderImpl& model, const data::Dataset& ds, data::Split split,
                               const std::vector<data::CandidateSet>& candidates, int max_len, int batch_size,
                               std::vector<EncoderCase>* cases) {
  const auto& samples = ds.split(split);
  const int64_t C = eval::check_candidates(samples, candidates, ds.num_items, data::split_name(split));
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto all = data::to_tensors(samples, ds.num_items, max_len);
  const int64_t S = (int64_t)samples.size();
  auto cand = torch::empty({S, C}, torch::kInt64);  // [S, C]
  auto* cp_out = cand.data_ptr<int64_t>();
  for (int64_t i = 0; i < S; ++i)
    std::copy(candidates[(size_t)i].items.begin(), candidates[(size_t)i].items.end(), cp_out + i * C);
  eval::MetricsAccumulator acc;
  for (int64_t b = 0; b < S; b += batch_size) {
    const int64_t e = std::min(S, b + batch_size);
    auto z = model.sequence_representation(all.seq.slice(0, b, e), all.lengths.slice(0, b, e));  // [B, Z]
    auto logits = model.all_logits(z);                                                           // [B, N]
    if (!torch::isfinite(logits).all().item<bool>())
      throw EvalError(std::string(data::split_name(split)) + " samples " + std::to_string(b) + ".." + std::to_string(e - 1) +
                      ": the encoder's scores contain NaN or inf (the model diverged; lower train.lr or check the checkpoint)");
    auto tgt = all.target.slice(0, b, e).unsqueeze(1);                                           // [B, 1]
    auto tgt_score = logits.gather(1, tgt);                                                      // [B, 1]
    // Full ranking: items strictly above the target, plus other items tied with it.
    auto above = logits.gt(tgt_score).sum(1) + logits.eq(tgt_score).sum(1) - 1;                  // [B]
    auto cand_scores = logits.gather(1, cand.slice(0, b, e));                                    // [B, C]
    auto cand_above = cand_scores.ge(tgt_score).sum(1) - 1;                                      // [B]
    auto top = cand_scores.argmax(1);                                                            // [B]
    auto ap = above.accessor<int64_t, 1>();
    auto cp = cand_above.accessor<int64_t, 1>();
    auto tp = top.accessor<int64_t, 1>();
    for (int64_t i = 0; i < e - b; ++i) {
      acc.add_candidate_case(cp[i] == 0, true);
      acc.add_full_rank(ap[i]);
      if (cases) cases->push_back({cp[i], tp[i]});
    }
  }
  if (was_training) model.train();
  return acc.finalize();
}

}  // namespace sbtrec::encoder
