// Evaluation of an SBT-Rec session on LLaRA's protocol (20 fixed candidates per case), by evaluators
// registered by name: "generation" (the model writes a title, matched to the candidates: HR@1,
// ValidRatio) and "likelihood" (the candidates ranked by the log-likelihood of their answer: HR@1,
// HR@5, NDCG@5, and optionally how much the ranking relies on the behavioural tokens); the attention
// analysis; predictions files.
// Legend: B prompts, P prompt tokens, E LLM width, C candidates, L layers, H heads.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/candidates.h"
#include "sbtrec/dist/process_group.h"
#include "sbtrec/eval/metrics.h"
#include "sbtrec/train/sbtrec_session.h"

namespace sbtrec::eval {

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
  Metrics metrics;
  data::Split split = data::Split::kTest;
  std::string mode = "generation";  // the evaluator's name
  std::vector<CaseResult> cases;
  // {"n", "hits", "valid", "hr@1", "valid_ratio", "hr@1_of_valid" (= LLaRA's code's test_hr), "split",
  // "mode", ...; with token reliance "hr@1_tokens_permuted", "hr@1_tokens_mean", "rank_shift_permuted",
  // "rank_shift_mean"}
  nlohmann::json to_json() const;
};
// An evaluation mode, registered by name (eval.mode): how many cases make one batch, how a batch of
// cases is scored, and how a scored case counts in the metrics. Adding one (a new file calling
// register_evaluator at load time) touches no trainer and no program.
struct Evaluator {
  std::function<int64_t(const train::SbtRecSession&)> batch_size;
  // Appends one CaseResult per case of `cases` (rows of `split`, in order) to `out`.
  std::function<void(train::SbtRecSession&, data::Split split, const train::SbtRecSession::Cases& cases,
                     std::vector<CaseResult>& out)>
      score;
  std::function<void(MetricsAccumulator&, const CaseResult&)> count;
};
// Registers `evaluator` under `name` (a second registration of a name is an error); returns true, so
// a file can register at load time with `const bool registered = register_evaluator(...)`.
bool register_evaluator(const std::string& name, Evaluator evaluator);
// The evaluator of `name`; a ConfigError naming eval.mode and listing the registered ones otherwise.
const Evaluator& evaluator(const std::string& name);

// Evaluates the first cfg.eval.max_cases (0 = all; validation: max_val_cases if set) cases of `split`
// with the evaluator cfg.eval.mode, the fixed candidate sets `candidates` and the evaluation template of
// each case. With a data-parallel `group` the batches go round-robin to the ranks and every rank
// returns all results, in case order (the same figures as one process). `scope` overrides the config's
// mode and case count (the learning curve's likelihood points).
struct EvalScope {
  std::optional<std::string> mode;
  int64_t max_cases = 0;  // > 0: overrides eval.max_cases / max_val_cases
};
SbtRecEval evaluate_sbtrec(train::SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                           dist::ProcessGroup* group = nullptr, const EvalScope& scope = {});
// The summed answer log-likelihood of each candidate of `cs` after the prompt `pb` (one row) whose
// input embeddings are `embeds` [1, P, E]: one prompt forward, its KV cache shared by the C answers.
// `what` names the case in a context-overflow error.
std::vector<double> score_candidates(train::SbtRecSession& s, const prompt::PromptBatch& pb, const torch::Tensor& embeds,
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
nlohmann::json attention_on_slots(train::SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                                  int64_t max_cases);

// The two sets whose gap the modality-gap analysis measures (scripts/modality_gap.py, issue 23 Fig. 3):
// "item_tokens" [N, E] the aligned behavioural token of every item (MBSR of its codes through the
// aligner, as a prompt slot reads it), "title_embeddings" [N, E] the mean of the LLM's input embeddings
// of its title's tokens, and with a user token "user_tokens" [S, E] those of the split's cases; float32.
std::map<std::string, torch::Tensor> behaviour_tokens(train::SbtRecSession& s, data::Split split);

// predictions.jsonl: one object per case with user, candidates, candidate_titles, target,
// target_title, output, named, valid, hit (and scores in likelihood mode), split, mode and source (the
// program that wrote it); written atomically. Item ids (candidates, target, named, history) are the
// dataset's own ids (Dataset::raw_item_ids).
void write_predictions(const std::string& path, const train::SbtRecSession& s, const SbtRecEval& e,
                       const std::vector<data::CandidateSet>& candidates, const std::string& source = "sbtrec-train");

}  // namespace sbtrec::eval
