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

// Eval mode, no grad. Candidate sets are checked first (eval::check_candidates); scores that are
// NaN or infinite (a diverged model) throw EvalError instead of producing metrics.
eval::Metrics evaluate_encoder(EncoderImpl& model, const data::Dataset& ds, data::Split split,
                               const std::vector<data::CandidateSet>& candidates, int max_len, int batch_size);

}  // namespace sbtrec::encoder
