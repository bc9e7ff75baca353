// The assembled SBT-Rec model (paper, sections 3-4) from one Config: the frozen encoder's vectors,
// HDSD, the RAM-Aligners, the LoRA-wrapped LLM and the hybrid prompt builder; its checkpoints (PEFT's
// adapter plus sbtrec.safetensors) and the inputs they record. Recipes train it, evaluators score it.
//   <checkpoint>/{adapter/, sbtrec.safetensors, config.yaml, inputs.json}
// Legend: B prompts, T tokens, N items, D item width, Z user width, E LLM width, L levels, K codes, C candidates.
#pragma once
#include <torch/torch.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/tokenizer.h"
#include "sbtrec/prompt/hybrid_prompt.h"
#include "sbtrec/config/config.h"
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
  // What the session was built from, as a checkpoint records it (inputs.json): {"encoder": {"dir",
  // "sha256" of its weights}, "dataset": {"name", "signature"}, "templates": {"path", "sha256"},
  // "model": {"name", "identity"}}.
  nlohmann::json inputs;

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
  Cases eval_cases(data::Split split, const std::vector<int64_t>& rows, const std::vector<data::CandidateSet>& candidates) const;
  // Prompt prefixes run once during one evaluation (eval.shared_prefix), by their token ids; emptied
  // at the start and end of each evaluation (the weights change between evaluations).
  std::map<std::vector<int64_t>, llm::PromptPrefix> prefix_cache;
  // The user vectors of `rows` of `split` [B, Z], or undefined without a user token.
  torch::Tensor users(data::Split split, const std::vector<int64_t>& rows) const;
};

// Builds the session: encoder (cfg.encoder.checkpoint), item and user vectors, HDSD (codebooks from
// cfg.quantizer.codebooks, else fitted by k-means++ when `fit_codebooks`, else left for a checkpoint
// to fill), the LLM with slot tokens and LoRA, the aligners (seeded by cfg.seed), the prompt builder.
// Throws ConfigError naming the key when an input is missing.
SbtRecSession build_sbtrec(const Config& cfg, const data::Dataset& ds, bool fit_codebooks);

// checkpoint dir: adapter/ (PEFT), sbtrec.safetensors (codebooks, user_codebooks, item_aligner.*,
// user_aligner.*, slot_embeddings [3, E]; metadata format sbtrec-checkpoint-1), config.yaml, inputs.json
// (the session's inputs: encoder, dataset, templates, model).
void save_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, const std::string& config_yaml);
// Loads a checkpoint written by save_sbtrec_checkpoint into a session built from a compatible config;
// a missing file or key or a shape mismatch is a CheckpointError naming the file and key. So is a
// session built from other inputs than the checkpoint records (another encoder, template file, dataset
// or model), naming both, unless `other_inputs` allows the cross-evaluation (then a warning).
void load_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, bool other_inputs = false);

}  // namespace sbtrec::train
