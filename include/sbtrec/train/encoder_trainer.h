// Training the sequential encoders on their own (the recommender SBT-Rec later freezes) as the recipe
// "encoder" on the training loop (train/loop.h): BCE with one sampled negative (LLaRA) or full
// softmax, Adam, validation every train.eval_every epochs with early stopping on train.monitor.
// Legend: B batch, T max_len, Z representation width, N items.
#pragma once
#include <memory>
#include <string>

#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/config/config.h"
#include "sbtrec/train/loop.h"
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
// seq [B, T], lengths [B], target [B] (this rank's share; may be empty). Data-parallel (`group`): the
// loss is the sum of the per-sample losses over every rank's share divided by the global sample
// count, gradients summed over the ranks in buckets of `bucket_bytes`; returns that global mean.
double encoder_train_step(encoder::EncoderImpl& model, torch::optim::Optimizer& optimizer, EncoderLoss loss,
                          const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target,
                          dist::ProcessGroup* group = nullptr, int64_t bucket_bytes = 25 << 20);

// Trains per `config` into `run` (constructed from the same config; start() is called here once the
// dataset is known to be usable). Writes config.yaml, metrics.jsonl, checkpoint/, results.json.
// Data-parallel with `group`: train.batch_size per rank, step s of the epoch's order covers samples
// [s*B*W, (s+1)*B*W) with rank r taking its r-th slice of B; negatives and dropout drawn per rank;
// validation on every rank (it is cheap) and rank 0 writes the run directory and tests the best
// checkpoint (the other ranks return no test figures).
EncoderTrainResult train_encoder(const Config& config, const data::Dataset& dataset, Run& run,
                                 dist::ProcessGroup* group = nullptr);
// The encoder recipe itself (the recipe "encoder" of sbtrec-train), for programs that run the loop.
std::unique_ptr<Recipe> make_encoder_recipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml,
                                            dist::ProcessGroup& group);

}  // namespace sbtrec::train
