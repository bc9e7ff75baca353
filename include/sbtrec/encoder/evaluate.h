// Scoring a sequential encoder under the protocol: HR@1 over the seeded candidate sets (a tie with
// another candidate is a miss), ValidRatio (1 by construction: an encoder always names one
// candidate), HR@10 and NDCG@10 by ranking all items.
#pragma once
#include <vector>

#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/eval/metrics.h"

namespace sbtrec::encoder {

// One case's result among its candidates: the target's rank (candidates scored at least as high,
// 0 = a hit) and the candidate ranked first (an index into the candidate set; ties to the lower index).
struct EncoderCase {
  int64_t rank = 0;
  int64_t top = 0;
};

// Eval mode, no grad. Candidate sets are checked first (eval::check_candidates); scores that are
// NaN or infinite (a diverged model) throw EvalError instead of producing metrics. `cases`, when
// given, receives each case's result (for per-case predictions).
eval::Metrics evaluate_encoder(EncoderImpl& model, const data::Dataset& ds, data::Split split,
                               const std::vector<data::CandidateSet>& candidates, int max_len, int batch_size,
                               std::vector<EncoderCase>* cases = nullptr);

}  // namespace sbtrec::encoder
