// Options of the training loop (`train:`): epochs, batches, optimiser, the validation schedule and
// early stopping on named metrics. The encoder trainer reads the loop keys; the SBS-AO trainer
// (sbtrec_trainer.h) also the paradigm, the three parameter groups, the schedule, accumulation,
// clipping and max_steps.
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
  static const std::vector<std::string> m = {"hr@1", "valid_ratio", "hr@10", "ndcg@10", "hr@5", "ndcg@5"};
  return m;
}

// single_stage: every step on hybrid prompts (SBT-Rec's SBS-AO); curriculum: LLaRA's, step t uses the
// hybrid prompt with probability t / total, else text-only; two_stage: text-only for the first
// two_stage_fraction of the steps, then hybrid.
enum class Paradigm { kSingleStage, kCurriculum, kTwoStage };
inline const config::Choices<Paradigm>& paradigms() {
  static const config::Choices<Paradigm> c = {
      {"single_stage", Paradigm::kSingleStage}, {"curriculum", Paradigm::kCurriculum}, {"two_stage", Paradigm::kTwoStage}};
  return c;
}
enum class OptimizerType { kAdam, kAdamW };
inline const config::Choices<OptimizerType>& optimizer_types() {
  static const config::Choices<OptimizerType> c = {{"adam", OptimizerType::kAdam}, {"adamw", OptimizerType::kAdamW}};
  return c;
}

// One of SBS-AO's parameter groups (codebooks, aligner, LoRA).
// What the SBT-Rec trainer optimises: the answer's cross entropy (SFT), or a preference between the
// target's answer and other candidates' (DPO: one rejected answer; S-DPO: preference.negatives of them)
// against the frozen checkpoint train.init_from (train/preference.h).
enum class TrainObjective { kSft, kDpo, kSdpo };
inline const config::Choices<TrainObjective>& objectives() {
  static const config::Choices<TrainObjective> c = {
      {"sft", TrainObjective::kSft}, {"dpo", TrainObjective::kDpo}, {"sdpo", TrainObjective::kSdpo}};
  return c;
}
struct PreferenceOptions {
  int negatives = 3;   // S-DPO's rejected answers per case (DPO: always 1)
  double beta = 1.0;   // the preference loss's temperature
};
inline void visit_fields(PreferenceOptions& o, config::Visitor& v) {
  v.field("negatives", o.negatives,
          "sdpo: rejected answers per case, other candidates of the case drawn from a seeded stream (dpo: 1)",
          config::at_least(1));
  v.field("beta", o.beta, "dpo / sdpo: beta of -log sigmoid(-log sum_j exp(beta (r_j - r_chosen)))", config::greater_than(0));
}

struct ParamGroupOptions {
  double lr = 0;            // 0 = train.lr
  double weight_decay = 0;  // L2 (adam) or decoupled (adamw)
};
inline void visit_fields(ParamGroupOptions& o, config::Visitor& v) {
  v.field("lr", o.lr, "peak learning rate of this group; 0 = train.lr", config::at_least(0.0));
  v.field("weight_decay", o.weight_decay, "weight decay of this group", config::at_least(0.0));
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
  // SBS-AO (sbtrec_trainer.h)
  Paradigm paradigm = Paradigm::kSingleStage;
  double two_stage_fraction = 0.5;
  OptimizerType optimizer = OptimizerType::kAdam;  // LLaRA: Adam
  ParamGroupOptions codebooks, aligner{0, 1e-5}, lora;  // LLaRA: 1e-5 weight decay on the projector
  double warmup_ratio = 0.05;   // LLaRA: linear warmup over 5% of the steps ...
  double min_lr_ratio = 0.01;   // ... from lr / 100, then cosine down to lr / 100
  int accumulation = 1;         // micro-batches per optimizer step
  double max_grad_norm = 0;     // 0 = no clipping
  int64_t max_steps = 0;        // > 0: the run's length in optimizer steps (and the schedule's)
  int64_t curve_every = 0;      // > 0: a likelihood validation every this many optimizer steps (learning curves)
  int64_t curve_cases = 50;     // validation cases of each curve point
  bool group_stats = true;      // per-group gradient norm and update/weight ratio at each log line
  TrainObjective objective = TrainObjective::kSft;
  std::string init_from;        // a run (or its checkpoint/) whose SBT-Rec checkpoint starts the policy and is the reference
  PreferenceOptions preference;
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
  v.field("paradigm", o.paradigm,
          "SBT-Rec trainer: single_stage (SBS-AO, hybrid prompts throughout), curriculum (LLaRA: hybrid with probability "
          "step/total, else text-only), two_stage (text-only, then hybrid)",
          paradigms());
  v.field("two_stage_fraction", o.two_stage_fraction, "two_stage: share of the steps trained text-only first",
          config::in_half_open(0, 1));
  v.field("optimizer", o.optimizer, "SBT-Rec trainer: adam (L2 weight decay, LLaRA) or adamw (decoupled)", optimizer_types());
  v.section("codebooks", o.codebooks, "SBT-Rec trainer: the HDSD codebooks' parameter group");
  v.section("aligner", o.aligner, "SBT-Rec trainer: the RAM-Aligners' parameter group");
  v.section("lora", o.lora, "SBT-Rec trainer: the LoRA adapters' parameter group");
  v.field("warmup_ratio", o.warmup_ratio, "SBT-Rec trainer: share of the steps with linear warmup from lr * min_lr_ratio",
          config::in_half_open(0, 1));
  v.field("min_lr_ratio", o.min_lr_ratio, "SBT-Rec trainer: warmup start and cosine floor as a fraction of lr",
          config::in_half_open(0, 1));
  v.field("accumulation", o.accumulation, "SBT-Rec trainer: micro-batches of batch_size per optimizer step",
          config::at_least(1));
  v.field("max_grad_norm", o.max_grad_norm, "SBT-Rec trainer: clip the global gradient norm to this; 0 = off",
          config::at_least(0.0));
  v.field("max_steps", o.max_steps, "SBT-Rec trainer: > 0 caps the run at this many optimizer steps (and sets the schedule's length)",
          config::at_least<int64_t>(0));
  v.field("curve_every", o.curve_every,
          "SBT-Rec trainer: > 0 scores the first curve_cases validation cases by candidate likelihood every this many "
          "optimizer steps (metrics.jsonl split val_curve; with eval.token_reliance also how much the tokens are used); "
          "a measurement only: the best checkpoint is still chosen at validation",
          config::at_least<int64_t>(0));
  v.field("curve_cases", o.curve_cases, "SBT-Rec trainer: validation cases per learning-curve point", config::at_least<int64_t>(1));
  v.field("group_stats", o.group_stats,
          "SBT-Rec trainer: log each parameter group's gradient norm and update/weight ratio with the loss (metrics.jsonl)");
  v.field("objective", o.objective,
          "SBT-Rec trainer: sft = the answer's cross entropy; dpo / sdpo = preference optimisation after SFT: the target's "
          "answer against 1 (dpo) or preference.negatives (sdpo) other candidates' answers, relative to the frozen "
          "train.init_from checkpoint, each case's prompt run once for all its answers",
          objectives());
  v.field("init_from", o.init_from,
          "SBT-Rec trainer: a run directory (or its checkpoint/) whose LoRA, aligners and codebooks start the run; "
          "required by dpo / sdpo, where the same checkpoint, frozen, is the reference; empty = a fresh start");
  v.section("preference", o.preference, "SBT-Rec trainer, dpo / sdpo: the preference loss");
}

}  // namespace sbtrec
