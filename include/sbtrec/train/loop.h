// One training loop for every recipe (docs/ARCHITECTURE.md): epochs and optimizer steps, data-parallel
// sharding of each step's global batch, accumulation, the loss normalised by the global batch's units
// (supervised tokens, samples), the gradient all-reduce, clipping, the learning-rate schedule, loss
// windows, progress, the validation cadence with early stopping and the best checkpoint (train/run.h),
// the training state saved and resumed exactly, and --stop-after.
// The seams a recipe fills in:
//   Recipe     what is trained (its model, optimizer, parameter groups, checkpoints, validation, test);
//   Objective  how a micro-batch of training samples becomes a loss (SFT's answer cross entropy today);
//   Policy     per step, which prompt kind is used and which parameter groups train (the paradigms).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/dist/process_group.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/train/options.h"
#include "sbtrec/train/run.h"

namespace sbtrec::train {

// What one optimizer step trains, decided by the recipe's policy before the step.
struct StepPlan {
  bool hybrid = true;                      // hybrid prompts (false: text-only); recipes without prompts ignore it
  std::vector<std::string> frozen_groups;  // parameter groups that keep their values this step
};
// The plan of step `step` (0-based) of `total`.
using Policy = std::function<StepPlan(int64_t step, int64_t total)>;
// The paradigms as policies: single_stage (hybrid throughout), curriculum (LLaRA: hybrid with
// probability step / total, a draw keyed by (seed, step)), two_stage (text-only for the first
// two_stage_fraction of the steps, then hybrid). No group is frozen by these three.
Policy paradigm_policy(const TrainOptions& options, uint64_t seed);
// Whether step `step` of `total` trains on hybrid prompts under o.paradigm (the policies' rule).
bool hybrid_step(const TrainOptions& o, uint64_t seed, int64_t step, int64_t total);

// Where one step stands, as recipes see it.
struct StepContext {
  int64_t epoch = 1;         // 1-based
  int64_t step = 0;          // 0-based optimizer step of the run
  int64_t total = 0;         // the run's optimizer steps
  int64_t index_in_epoch = 0;
  int rank = 0, world = 1;
  StepPlan plan;
};

// One rank's share of one micro-batch, prepared by an objective.
struct MicroBatch {
  virtual ~MicroBatch() = default;
  double units = 0;       // what the loss averages over: the loop all-reduces the step's sum
  double throughput = 0;  // counted for the log's rate (tokens, samples)
};

// The objective seam: how a recipe's training samples become a loss.
class Objective {
 public:
  virtual ~Objective() = default;
  // This rank's share `rows` (indices of training samples, never empty) of one micro-batch of `ctx`.
  virtual std::unique_ptr<MicroBatch> prepare(const StepContext& ctx, const std::vector<int64_t>& rows) = 0;
  // The mean loss over `micro`'s units: a scalar with gradient.
  virtual torch::Tensor loss(MicroBatch& micro) = 0;
  // The log's rate unit ("tokens", "samples").
  virtual const char* throughput_unit() const { return "samples"; }
};

// The recipe seam: everything the loop does not own.
class Recipe {
 public:
  virtual ~Recipe() = default;
  // "sft", "encoder": printed at start, recorded in results.json.
  virtual std::string name() const = 0;
  // The model for messages ("SBT-Rec", "SASRec") and the results' fields (model, dataset, seed, ...).
  virtual std::string model_name() const = 0;
  virtual nlohmann::json describe() const = 0;
  virtual uint64_t seed() const = 0;  // the run's seed: the default order and step seeds are keyed by it

  virtual int64_t num_samples() const = 0;  // training samples per epoch
  // The epoch's sample order (a permutation of [0, num_samples)); default: counter-based, keyed by
  // (seed, epoch), so a resumed run sees the same order.
  virtual std::vector<int64_t> epoch_order(int64_t epoch);
  virtual void before_epoch(int64_t epoch) {}
  // Seeds torch's generator for the step's dropout and sampling; default keyed by (seed, step, rank).
  virtual void seed_step(const StepContext& ctx);
  virtual Objective& objective() = 0;
  virtual Policy policy() const;  // default: single_stage

  // The optimizer over the trainables, one parameter group per name, and each group's peak lr.
  virtual torch::optim::Optimizer& optimizer() = 0;
  virtual const std::vector<std::string>& group_names() const = 0;
  virtual const std::vector<double>& peak_lrs() const = 0;
  // The multiplier of every group's peak lr at `step` of `total` (default 1: constant).
  virtual double schedule(int64_t step, int64_t total) const { return 1.0; }

  // Called once before the first step (a fresh run: step 0) and after each optimizer step.
  virtual void on_start(int64_t step, Run& run, dist::ProcessGroup& group) {}
  virtual void after_step(const StepContext& ctx, Run& run, dist::ProcessGroup& group) {}

  virtual eval::Metrics validate(dist::ProcessGroup& group) = 0;
  // The name of the evaluation validate and test run (an evaluator's, or "ranking" for the encoders'
  // full ranking), recorded with every result.
  virtual std::string eval_mode() const = 0;
  virtual std::string summarize(const eval::Metrics& val) const;  // the log's words on a validation
  virtual void save_checkpoint(const std::string& dir) = 0;
  virtual void load_checkpoint(const std::string& dir) = 0;
  // The best checkpoint is loaded (and on several ranks identical): evaluate on the test split, write
  // what the recipe writes (predictions) when `writes`, and return results.json's "test".
  virtual nlohmann::json test(dist::ProcessGroup& group, Run& run) = 0;

  // Training state beyond the loop's and the optimizer's (e.g. dead-code counters); restored on resume.
  virtual nlohmann::json extra_state() const { return nlohmann::json::object(); }
  virtual void restore_extra_state(const nlohmann::json& state) {}
  // Whether runs save state/ at each epoch end and may --resume / --stop-after (SFT yes, encoders no).
  virtual bool resumable() const { return true; }
  // Whether train records are logged every train.log_every steps (else one per epoch).
  virtual bool logs_steps() const { return true; }
  virtual bool group_stats() const { return false; }  // per-group gradient norm and update ratio in the logs
  // The name of the trainables in the identity check's log line.
  virtual std::string trainables_label() const { return "trainables"; }
};

// The loop's part of the config (train.*, seed, dist.bucket_mb) and of the program's flags.
struct LoopOptions {
  uint64_t seed = 42;
  int64_t batch_size = 1;  // per rank
  int64_t accumulation = 1;
  int64_t epochs = 1;
  int64_t max_steps = 0;  // > 0: the run's length in optimizer steps
  double max_grad_norm = 0;
  int log_every = 50;
  int patience = 20;
  std::string monitor;  // the first monitored metric, for the early-stop message
  int64_t bucket_bytes = 25 << 20;
  bool resume = false;     // continue from <output_dir>/state
  int64_t stop_after = 0;  // > 0: stop after this many optimizer steps (state saved)
  dist::ProcessGroup* group = nullptr;
  std::function<void(int64_t step, int rank)> before_step;  // tests' fault injection
};
LoopOptions loop_options(const TrainOptions& train, uint64_t seed, double bucket_mb);

// The saved training state of a run (state/state.json), checked for resuming before any model is
// built: it exists, has this format, belongs to this run (run.json's id), was saved by a run of the
// same config and world size. ConfigError / CheckpointError naming what differs.
nlohmann::json read_resume_state(Run& run, int world_size);

// Trains `recipe` into `run` (the run directory is started here, after every rank's checks) and tests
// the best checkpoint. Returns results.json's content: the recipe's description, steps, total_steps,
// first_loss / last_loss (means of the first and last ten steps that ran; absent when none ran), test;
// {"stopped": true, ...} without test figures when stop_after interrupted it. `resumed`: the state
// read_resume_state returned when options.resume.
nlohmann::json run_training(Recipe& recipe, Run& run, const LoopOptions& options, const nlohmann::json& resumed = {});

// One optimizer step over this rank's micro-batches (may be none at an epoch's tail): the loss is the
// sum of the micro-batches' unit losses over every rank divided by the global unit count (all-reduced
// first), so neither accumulation nor the split over ranks changes it; backward per micro-batch;
// `frozen` groups' gradients dropped; gradients summed over the ranks in buckets; optional clipping;
// the step. Returns that global mean loss.
double optimizer_step(Objective& objective, torch::optim::Optimizer& optimizer,
                      const std::vector<std::unique_ptr<MicroBatch>>& micro, double max_grad_norm,
                      dist::ProcessGroup* group = nullptr, int64_t bucket_bytes = 25 << 20,
                      const std::vector<size_t>& frozen = {});

}  // namespace sbtrec::train
