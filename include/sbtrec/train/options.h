// Options of the training loop (`train:`): epochs, batches, optimiser, the validation schedule and
// early stopping on named metrics. The encoder trainer reads all of them; SBS-AO will reuse the loop keys.
#pragma once
#include <string>
#include <vector>

#include "sbtrec/common/config_io.h"

namespace sbtrec {

enum class EncoderLoss { kBCE, kCE };
inline const config::Choices<EncoderLoss>& encoder_losses() {
  static const config::Choices<EncoderLoss> c = {{"bce", EncoderLoss::kBCE}, {"ce", EncoderLoss::kCE}};
  return c;
}

// Metric names a run can monitor (the keys of eval::Metrics' JSON).
inline const std::vector<std::string>& monitorable_metrics() {
  static const std::vector<std::string> m = {"hr@1", "valid_ratio", "hr@10", "ndcg@10"};
  return m;
}

struct TrainOptions {
  int epochs = 200;
  int batch_size = 256;
  double lr = 1e-3;
  double weight_decay = 0.0;
  EncoderLoss loss = EncoderLoss::kBCE;  // bce: one sampled negative per sample (LLaRA) | ce: softmax over all items
  // Validation metrics compared in order (later ones break ties); absent metrics are skipped.
  std::vector<std::string> monitor = {"hr@1", "ndcg@10"};
  int patience = 20;    // stop after this many evaluations without a better validation result
  int eval_every = 1;   // epochs between validation runs
  int log_every = 50;   // steps between progress lines when stderr is not a terminal
};

inline void visit_fields(TrainOptions& o, config::Visitor& v) {
  v.field("epochs", o.epochs, "passes over the training samples (0: evaluate the initial model)", config::at_least(0));
  v.field("batch_size", o.batch_size, "samples per step", config::at_least(1));
  v.field("lr", o.lr, "Adam learning rate", config::greater_than(0));
  v.field("weight_decay", o.weight_decay, "Adam weight decay", config::at_least(0.0));
  v.field("loss", o.loss, "encoder loss: bce = one sampled negative (LLaRA), ce = softmax over all items", encoder_losses());
  v.field("monitor", o.monitor, "validation metrics that pick the best checkpoint, in order (later ones break ties)",
          config::each_one_of(monitorable_metrics(), true));
  v.field("patience", o.patience, "early stop after this many validations without improvement", config::at_least(1));
  v.field("eval_every", o.eval_every, "epochs between validations", config::at_least(1));
  v.field("log_every", o.log_every, "steps between progress lines in logs (not on a terminal)", config::at_least(1));
}

}  // namespace sbtrec
