// SBT-Rec's supervised fine-tuning (paper, section 3.4, SBS-AO) as the recipe "sft" on the training
// loop (loop.h): one optimizer over the codebooks, aligner and LoRA groups of a session
// (sbtrec_session.h), the answer title's cross entropy as the objective, the paradigms as policies,
// LLaRA's warmup-cosine schedule, validation and test by the evaluators (eval/sbtrec_evaluators.h),
// exact resumption.
//   <output_dir>/config.yaml run.json metrics.jsonl results.json predictions.jsonl
//   <output_dir>/checkpoint/{adapter/, sbtrec.safetensors, config.yaml, inputs.json}   best on validation
//   <output_dir>/state/{checkpoint/, optimizer.pt, state.json}                         latest, for --resume
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/eval/sbtrec_evaluators.h"
#include "sbtrec/config/config.h"
#include "sbtrec/train/loop.h"
#include "sbtrec/train/run.h"
#include "sbtrec/train/sbtrec_session.h"

namespace sbtrec::train {

// LLaRA's schedule as a multiplier of each group's peak lr at optimizer step `step` (0-based) of
// `total`: linear warmup over warmup_ratio of the steps from min_lr_ratio, then cosine to min_lr_ratio.
double schedule_factor(const TrainOptions& o, int64_t step, int64_t total);

struct SbtRecTrainOptions {
  bool resume = false;     // continue from <output_dir>/state
  int64_t stop_after = 0;  // > 0: stop after this many optimizer steps (state saved, schedule unchanged)
  dist::ProcessGroup* group = nullptr;  // data-parallel: this process's group (null: one process)
  // Called with (step, rank) as each optimizer step (1-based) starts: the tests' fault injection
  // (sbtrec-train-faults, a test build that is never installed); null in every shipped program.
  std::function<void(int64_t step, int rank)> before_step;
};
// Trains per `cfg` into `run` and evaluates the best checkpoint on the test split; returns what
// results.json holds ({"stopped": true, ...} and no test figures when stop_after interrupted it).
// Data-parallel (options.group of W ranks): train.batch_size is per rank; micro-batch m of the epoch's
// order covers samples [m*B*W, (m+1)*B*W), rank r taking [m*B*W + r*B, m*B*W + (r+1)*B); one prompt
// template per optimizer step; gradients of the trainables summed over the ranks (sbtrec_step);
// validation and test sharded; rank 0 writes the run directory; every state save checks that all
// ranks hold identical trainables. --resume needs the same world size and reads state/ on every rank.
nlohmann::json train_sbtrec(const Config& cfg, const data::Dataset& ds, Run& run, const SbtRecTrainOptions& options = {});
// The SFT recipe itself (the recipe "sft" of sbtrec-train), for programs that run the loop themselves.
std::unique_ptr<Recipe> make_sft_recipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml,
                                        dist::ProcessGroup& group, bool fit_codebooks);

// SBS-AO's optimizer: one Adam / AdamW over the non-empty groups codebooks, aligner, LoRA, each with its
// own peak lr (train.<group>.lr, 0 = train.lr; returned in `peak_lr` with the groups' `names`, in
// group order) and weight decay.
std::unique_ptr<torch::optim::Optimizer> make_sbtrec_optimizer(const TrainOptions& t, SbtRecModelImpl& m,
                                                               std::vector<double>& peak_lr, std::vector<std::string>& names);

// One SBS-AO optimizer step over this rank's `micro` prompt batches (each with its user vectors; may
// be empty at an epoch's tail): the loss is the sum of the answer tokens' cross entropy over the
// whole global batch (every micro-batch of every rank) divided by its supervised-token count
// (all-reduced first), so neither accumulation nor the split over ranks changes it; backward per
// micro-batch, gradients summed over the ranks in buckets of `bucket_bytes`, optional clipping, the
// step. Returns that global mean token loss. Shared by the trainer and bench/.
double sbtrec_step(SbtRecModelImpl& model, torch::optim::Optimizer& optimizer,
                   const std::vector<std::pair<prompt::PromptBatch, torch::Tensor>>& micro, double max_grad_norm,
                   dist::ProcessGroup* group = nullptr, int64_t bucket_bytes = 25 << 20);

}  // namespace sbtrec::train
