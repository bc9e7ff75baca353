// Options of evaluation (`eval:`): candidate sets (count and seed) and the scoring batch size.
#pragma once
#include <cstdint>

#include "sbtrec/common/config_io.h"
#include "sbtrec/data/noise.h"
#include "sbtrec/eval/registry.h"

namespace sbtrec {


struct EvalOptions {
  int num_negatives = 20;               // candidates = target + this many (paper: 20; llara preset: 19)
  std::uint64_t candidate_seed = 2024;  // same seed -> same candidates for every run and model
  int batch_size = 1024;
  // SBT-Rec: the evaluator, by its registered name (eval/sbtrec_evaluators.h): generation (the model
  // writes a title, matched against the candidates: HR@1, ValidRatio; LLaRA's protocol), constrained
  // (generation restricted to the candidates' answers) or likelihood
  // (the candidates ranked by the log-likelihood of their answer text: HR@1, HR@5, NDCG@5).
  std::string mode = "generation";
  int llm_batch_size = 8;                 // SBT-Rec: prompts generated per batch
  int64_t max_cases = 0;                  // SBT-Rec: > 0 evaluates only the first this many cases of a split
  int64_t max_val_cases = 0;              // SBT-Rec: > 0 caps validation alone (0 = max_cases)
  bool token_reliance = false;            // SBT-Rec likelihood mode: re-score with the tokens moved (3x the cost)
  bool sort_by_length = true;             // SBT-Rec generation: batch cases of similar prompt length (less padding)
  bool shared_prefix = true;              // SBT-Rec generation: run the prompts' common start once per evaluation
  data::NoiseOptions noise;               // sbtrec-eval, sbtrec-data export: items injected into the histories
};

inline void visit_fields(EvalOptions& o, config::Visitor& v) {
  v.field("num_negatives", o.num_negatives, "negatives per candidate set (target + this many); preset paper 20, llara 19",
          config::at_least(1));
  v.field("candidate_seed", o.candidate_seed, "seed of the candidate sets: the same for every run and model");
  v.field("batch_size", o.batch_size, "cases scored per batch", config::at_least(1));
  v.field("mode", o.mode,
          "SBT-Rec: generation (a generated title matched to the candidates, LLaRA's protocol), constrained (generation "
          "that may write only the case's candidate answers, through a prefix tree per case: ValidRatio 1 unless "
          "generation.max_new_tokens cuts an answer; greedy, or beam search with generation.num_beams) or likelihood "
          "(candidates ranked by the log-likelihood of their answer: HR@1, HR@5, NDCG@5); any evaluator registered by name",
          config::one_of(eval::evaluator_names()));
  v.field("llm_batch_size", o.llm_batch_size, "SBT-Rec: prompts per generation batch", config::at_least(1));
  v.field("max_cases", o.max_cases, "SBT-Rec: > 0 evaluates only the first this many cases of each split (smoke runs)",
          config::at_least<int64_t>(0));
  v.field("max_val_cases", o.max_val_cases, "SBT-Rec: > 0 caps the validation split alone (0 = max_cases)",
          config::at_least<int64_t>(0));
  v.field("token_reliance", o.token_reliance,
          "SBT-Rec, likelihood mode: also score each case with the candidates' tokens rotated by one candidate and with "
          "every token replaced by their mean, and report how far the target's rank moves (3x the evaluation cost)");
  v.field("sort_by_length", o.sort_by_length,
          "SBT-Rec generation: batch the cases in order of prompt length (less padding; each case's prompt, template "
          "and candidates stay its own, the results come back in case order)");
  v.field("shared_prefix", o.shared_prefix,
          "SBT-Rec generation: run the start that a batch's prompts share (chat template, instruction) once per "
          "evaluation and continue each prompt from its key/value cache");
  v.section("noise", o.noise,
            "sbtrec-eval and sbtrec-data export: items injected into each evaluated history after the candidates are "
            "drawn (RQ5; data/noise.h); sbtrec-train refuses it");
}

}  // namespace sbtrec
