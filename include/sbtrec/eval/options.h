// Options of evaluation (`eval:`): candidate sets (count and seed) and the scoring batch size.
#pragma once
#include <cstdint>

#include "sbtrec/common/config_io.h"

namespace sbtrec {

struct EvalOptions {
  int num_negatives = 20;               // candidates = target + this many (paper: 20; llara preset: 19)
  std::uint64_t candidate_seed = 2024;  // same seed -> same candidates for every run and model
  int batch_size = 1024;
};

inline void visit_fields(EvalOptions& o, config::Visitor& v) {
  v.field("num_negatives", o.num_negatives, "negatives per candidate set (target + this many); preset paper 20, llara 19",
          config::at_least(1));
  v.field("candidate_seed", o.candidate_seed, "seed of the candidate sets: the same for every run and model");
  v.field("batch_size", o.batch_size, "cases scored per batch", config::at_least(1));
}

}  // namespace sbtrec
