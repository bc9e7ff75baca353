// Training the sequential encoders on their own (the recommender SBT-Rec later freezes): BCE with
// one sampled negative (LLaRA) or full softmax, Adam, validation every train.eval_every epochs with
// early stopping on train.monitor, through the shared run lifecycle (train/run.h).
// Legend: B batch, T max_len, Z representation width, N items.
#pragma once
#include <string>

#include "sbtrec/data/dataset.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/train/config.h"
#include "sbtrec/train/run.h"

namespace sbtrec::train {

struct EncoderTrainResult {
  int best_epoch = -1;
  eval::Metrics best_val, test;
  std::string checkpoint_dir;
  double seconds = 0;
  nlohmann::json results;  // what results.json holds
};

// One optimisation step on a batch: returns the loss. Shared by the trainer and bench/.
// seq [B, T], lengths [B], target [B].
double encoder_train_step(encoder::EncoderImpl& model, torch::optim::Optimizer& optimizer, EncoderLoss loss,
                          const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target);

// Trains per `config` into `run` (constructed from the same config; start() is called here once the
// dataset is known to be usable). Writes config.yaml, metrics.jsonl, checkpoint/, results.json.
EncoderTrainResult train_encoder(const Config& config, const data::Dataset& dataset, Run& run);

}  // namespace sbtrec::train
