// Training loop for the sequential encoders: BCE with one sampled negative (LLaRA) or full softmax,
// Adam, validation HR@1 every eval_every epochs with early stopping (ties broken by NDCG@10), best
// checkpoint kept in <output_dir>/checkpoint, metrics appended to <output_dir>/metrics.jsonl.
// Legend: B batch, T max_len, Z representation width, N items.
#pragma once
#include <functional>
#include <string>

#include "sbtrec/common/config.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/eval/metrics.h"

namespace sbtrec::encoder {

struct TrainResult {
  int best_epoch = -1;
  eval::Metrics best_val, test;
  std::string checkpoint_dir;
  double seconds = 0;
};

// One optimisation step on a batch: returns the loss. Shared by the trainer and bench/.
// seq [B, T], lengths [B], target [B].
double train_step(EncoderImpl& model, torch::optim::Optimizer& optimizer, const std::string& loss,
                  const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target);

// Trains per `config` (writes config.yaml, metrics.jsonl, checkpoint/, results.json into output_dir).
TrainResult train_encoder(const Config& config, const data::Dataset& dataset);

}  // namespace sbtrec::encoder
