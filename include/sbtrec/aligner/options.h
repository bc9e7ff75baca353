// Options of the aligner stage (`aligner:`): the RAM-Aligner's form and width (ram_aligner.h).
#pragma once
#include <cstdint>

#include "sbtrec/common/config_io.h"

namespace sbtrec::aligner {

enum class AlignerType { kMlp, kLinear };
inline const config::Choices<AlignerType>& aligner_types() {
  static const config::Choices<AlignerType> c = {{"mlp", AlignerType::kMlp}, {"linear", AlignerType::kLinear}};
  return c;
}

struct AlignerOptions {
  AlignerType type = AlignerType::kMlp;
  int64_t hidden_size = 0;  // H; 0 = the LLM's embedding width (LLaRA)
};

inline void visit_fields(AlignerOptions& o, config::Visitor& v) {
  v.field("type", o.type, "mlp = Linear-GELU-Linear (RAM-Aligner); linear = one Linear (the paper's w/o-RAM ablation)",
          aligner_types());
  v.field("hidden_size", o.hidden_size, "hidden width of the mlp; 0 = the LLM's embedding width (LLaRA)",
          config::at_least<int64_t>(0));
}

}  // namespace sbtrec::aligner
