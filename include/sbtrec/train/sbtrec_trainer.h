// SBT-Rec end to end (paper, sections 3-4): a session that assembles the frozen encoder's vectors,
// HDSD, the RAM-Aligners, the LoRA-wrapped LLM and the hybrid prompt builder from one Config; the
// single-stage SBS-AO trainer (and LLaRA's curriculum and a two-stage schedule) over three parameter
// groups; checkpoints in PEFT's format plus sbtrec.safetensors; exact resumption; and evaluation by
// generation (HR@1, ValidRatio) or by candidate likelihood (HR@1, HR@5, NDCG@5).
//   <output_dir>/config.yaml metrics.jsonl results.json predictions.jsonl
//   <output_dir>/checkpoint/{adapter/, sbtrec.safetensors, config.yaml}   best on validation
//   <output_dir>/state/{checkpoint/, optimizer.pt, state.json}            latest, for --resume
// Legend: B prompts, T tokens, N items, D item width, Z user width, E LLM width, L levels, K codes, C candidates.
#pragma once
#include <torch/torch.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/tokenizer.h"
#include "sbtrec/prompt/hybrid_prompt.h"
#include "sbtrec/train/config.h"
#include "sbtrec/train/run.h"
#include "sbtrec/train/sbtrec_model.h"

namespace sbtrec::train {

struct SbtRecSession {
  Config cfg;
  const data::Dataset* ds = nullptr;
  std::unique_ptr<llm::Tokenizer> tokenizer;
  prompt::SlotTokens slots;
  std::unique_ptr<prompt::PromptBuilder> builder;
  SbtRecModel model{nullptr};
  std::array<torch::Tensor, 3> user_vectors;  // per split (train, val, test) [S, Z]; undefined without a user token
  bool user_token = false;
  llm::GenerationOptions generation;  // cfg.generation with the tokenizer's stop, pad and suppressed ids
  std::string encoder_dir;

  // Prompts of samples `rows` of `split` with their candidate sets (one per row), hybrid or text-only,
  // with the target's answer when `with_answer`; template `templates[i]` for row i. Training pads on
  // the right, generation on the left.
  prompt::PromptBatch batch(data::Split split, const std::vector<int64_t>& rows,
                            const std::vector<const data::CandidateSet*>& candidates, const std::vector<size_t>& templates,
                            bool hybrid, bool with_answer, bool left_pad) const;
  // Evaluation cases [begin, end) of `split`: their rows, fixed candidate sets and per-case templates.
  struct Cases {
    std::vector<int64_t> rows;
    std::vector<const data::CandidateSet*> candidates;
    std::vector<size_t> templates;
  };
  Cases eval_cases(data::Split split, int64_t begin, int64_t end, const std::vector<data::CandidateSet>& candidates) const;
  // The user vectors of `rows` of `split` [B, Z], or undefined without a user token.
  torch::Tensor users(data::Split split, const std::vector<int64_t>& rows) const;
};

// Builds the session: encoder (cfg.encoder.checkpoint), item and user vectors, HDSD (codebooks from
// cfg.quantizer.codebooks, else fitted by k-means++ when `fit_codebooks`, else left for a checkpoint
// to fill), the LLM with slot tokens and LoRA, the aligners (seeded by cfg.seed), the prompt builder.
// Throws ConfigError naming the key when an input is missing.
SbtRecSession build_sbtrec(const Config& cfg, const data::Dataset& ds, bool fit_codebooks);

// checkpoint dir: adapter/ (PEFT), sbtrec.safetensors (codebooks, user_codebooks, item_aligner.*,
// user_aligner.*, slot_embeddings [3, E]; metadata format sbtrec-checkpoint-1), config.yaml.
void save_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, const std::string& config_yaml);
// Loads a checkpoint written by save_sbtrec_checkpoint into a session built from a compatible config;
// a missing file or key or a shape mismatch is a CheckpointError naming the file and key.
void load_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s);

// The outcome of one evaluation, case by case.
struct CaseResult {
  int64_t index = 0;
  std::string output;                // generated text (likelihood mode: the top-ranked title)
  std::vector<int32_t> named;        // candidates the output names
  bool valid = false, hit = false;
  std::vector<double> scores;        // likelihood mode: per candidate, summed answer log-likelihood
  int64_t rank = -1;                 // likelihood mode: candidates scored at least as high as the target
  // eval.token_reliance: the rank with the candidates' tokens rotated by one, and with every
  // behavioural token replaced by the prompt's mean token (-1: not measured).
  int64_t rank_permuted = -1, rank_mean = -1;
};
struct SbtRecEval {
  eval::Metrics metrics;
  data::Split split = data::Split::kTest;
  EvalMode mode = EvalMode::kGeneration;
  std::vector<CaseResult> cases;
  // {"n", "hits", "valid", "hr@1", "valid_ratio", "hr@1_of_valid" (= LLaRA's code's test_hr), "split",
  // "mode", ...; with token reliance "hr@1_tokens_permuted", "hr@1_tokens_mean", "rank_shift_permuted",
  // "rank_shift_mean"}
  nlohmann::json to_json() const;
};
// Evaluates the first cfg.eval.max_cases (0 = all; validation: max_val_cases if set) cases of `split` in cfg.eval.mode, with the fixed
// candidate sets `candidates` and the evaluation template of each case. With a data-parallel `group`
// the generation batches (likelihood: the cases) go round-robin to the ranks and every rank returns
// all results, in case order (the same figures as one process).
// `scope` overrides the config's mode and case count (the learning curve's likelihood points).
struct EvalScope {
  std::optional<EvalMode> mode;
  int64_t max_cases = 0;  // > 0: overrides eval.max_cases / max_val_cases
};
SbtRecEval evaluate_sbtrec(SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                           dist::ProcessGroup* group = nullptr, const EvalScope& scope = {});
// The summed answer log-likelihood of each candidate of `cs` after the prompt `pb` (one row) whose
// input embeddings are `embeds` [1, P, E]: one prompt forward, its KV cache shared by the C answers.
// `what` names the case in a context-overflow error.
std::vector<double> score_candidates(SbtRecSession& s, const prompt::PromptBatch& pb, const torch::Tensor& embeds,
                                     const data::CandidateSet& cs, const std::string& what);

// Where the answer's first token looks: for the first `max_cases` cases of `split` (hybrid prompts, as
// evaluated), the attention weights of the last prompt position (which predicts the answer's first
// token) in every layer, summed over the target's candidate slot, the other candidates' slots (mean per
// slot), the user slot and the history slots; and over each candidate's segment (its slot and title,
// at most 17 tokens). Per layer: the mean over cases and heads, and the head that puts the largest
// share of its candidate-slot (segment) mass on the target's. JSON:
// {"cases", "layers": [{"layer", "target_slot", "other_candidate_slot", "user_slot", "history_slots",
//   "best_head", "best_head_target_share", "target_segment", "other_candidate_segment",
//   "best_segment_head", "best_segment_head_target_share"}], "chance_target_share": 1 / C}.
nlohmann::json attention_on_slots(SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                                  int64_t max_cases);

// predictions.jsonl: one object per case with user, candidates, candidate_titles, target,
// target_title, output, named, valid, hit (and scores in likelihood mode); written atomically. Item
// ids (candidates, target, named, history) are the dataset's own ids (Dataset::raw_item_ids).
void write_predictions(const std::string& path, const SbtRecSession& s, const SbtRecEval& e,
                       const std::vector<data::CandidateSet>& candidates);

// LLaRA's schedule as a multiplier of each group's peak lr at optimizer step `step` (0-based) of
// `total`: linear warmup over warmup_ratio of the steps from min_lr_ratio, then cosine to min_lr_ratio.
double schedule_factor(const TrainOptions& o, int64_t step, int64_t total);
// Whether step `step` of `total` trains on hybrid prompts under o.paradigm (curriculum: a draw keyed
// by (seed, step) below step / total).
bool hybrid_step(const TrainOptions& o, uint64_t seed, int64_t step, int64_t total);

struct SbtRecTrainOptions {
  bool resume = false;     // continue from <output_dir>/state
  int64_t stop_after = 0;  // > 0: stop after this many optimizer steps (state saved, schedule unchanged)
  dist::ProcessGroup* group = nullptr;  // data-parallel: this process's group (null: one process)
};
// Trains per `cfg` into `run` and evaluates the best checkpoint on the test split; returns what
// results.json holds ({"stopped": true, ...} and no test figures when stop_after interrupted it).
// Data-parallel (options.group of W ranks): train.batch_size is per rank; micro-batch m of the epoch's
// order covers samples [m*B*W, (m+1)*B*W), rank r taking [m*B*W + r*B, m*B*W + (r+1)*B); one prompt
// template per optimizer step; gradients of the trainables summed over the ranks (sbtrec_step);
// validation and test sharded; rank 0 writes the run directory; every state save checks that all
// ranks hold identical trainables. --resume needs the same world size and reads state/ on every rank.
nlohmann::json train_sbtrec(const Config& cfg, const data::Dataset& ds, Run& run, const SbtRecTrainOptions& options = {});

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
