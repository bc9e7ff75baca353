// Recommendation metrics (see metrics.h).
#include "sbtrec/eval/metrics.h"

#include <cmath>

#include "sbtrec/data/batch.h"

namespace sbtrec::eval {

nlohmann::json Metrics::to_json() const {
  return {{"n", n}, {"hr@1", hr1}, {"valid_ratio", valid_ratio}, {"hr@10", hr10}, {"ndcg@10", ndcg10}};
}

void MetricsAccumulator::add_candidate_case(bool hit, bool valid_output) {
  ++n;
  hits1 += hit;
  valid += valid_output;
}

void MetricsAccumulator::add_full_rank(int64_t rank) {
  if (rank < 10) {
    hits10 += 1;
    ndcg10 += 1.0 / std::log2((double)rank + 2.0);
  }
}

Metrics MetricsAccumulator::finalize() const {
  Metrics m;
  m.n = n;
  if (n == 0) return m;
  m.hr1 = (double)hits1 / n;
  m.valid_ratio = (double)valid / n;
  m.hr10 = hits10 / n;
  m.ndcg10 = ndcg10 / n;
  return m;
}

Metrics evaluate_encoder(encoder::EncoderImpl& model, const data::Dataset& ds, data::Split split,
                         const std::vector<data::CandidateSet>& candidates, int max_len, int batch_size) {
  const auto& samples = ds.split(split);
  TORCH_CHECK(candidates.size() == samples.size(), "candidate sets do not match the split");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto all = data::to_tensors(samples, ds.num_items, max_len);
  const int64_t S = (int64_t)samples.size();
  const int64_t C = candidates.empty() ? 0 : (int64_t)candidates[0].items.size();
  auto cand = torch::empty({S, C}, torch::kInt64);  // [S, C]
  auto* cp_out = cand.data_ptr<int64_t>();
  for (int64_t i = 0; i < S; ++i)
    std::copy(candidates[i].items.begin(), candidates[i].items.end(), cp_out + i * C);
  MetricsAccumulator acc;
  for (int64_t b = 0; b < S; b += batch_size) {
    const int64_t e = std::min(S, b + batch_size);
    auto z = model.sequence_representation(all.seq.slice(0, b, e), all.lengths.slice(0, b, e));  // [B, Z]
    auto logits = model.all_logits(z);                                                           // [B, N]
    auto tgt = all.target.slice(0, b, e).unsqueeze(1);                                           // [B, 1]
    auto tgt_score = logits.gather(1, tgt);                                                      // [B, 1]
    // Full ranking: items strictly above the target, plus other items tied with it.
    auto above = logits.gt(tgt_score).sum(1) + logits.eq(tgt_score).sum(1) - 1;                  // [B]
    auto cand_scores = logits.gather(1, cand.slice(0, b, e));                                    // [B, C]
    auto cand_above = cand_scores.ge(tgt_score).sum(1) - 1;                                      // [B]
    auto ap = above.accessor<int64_t, 1>();
    auto cp = cand_above.accessor<int64_t, 1>();
    for (int64_t i = 0; i < e - b; ++i) {
      acc.add_candidate_case(cp[i] == 0, true);
      acc.add_full_rank(ap[i]);
    }
  }
  if (was_training) model.train();
  return acc.finalize();
}

std::string format_table(const std::string& model, const std::string& split, const Metrics& m) {
  return fmt::format("{:<10} {:<6} {:>6} {:>7} {:>11} {:>7} {:>8}\n{:<10} {:<6} {:>6} {:>7.4f} {:>11.4f} {:>7.4f} {:>8.4f}\n",
                     "model", "split", "n", "HR@1", "ValidRatio", "HR@10", "NDCG@10", model, split, m.n, m.hr1,
                     m.valid_ratio, m.hr10, m.ndcg10);
}

}  // namespace sbtrec::eval
