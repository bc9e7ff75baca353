// Text generation with a KV cache: greedy and beam search with transformers' semantics (num_beams,
// length_penalty, early_stopping true/false/"never", the vectorised beam search of transformers 5),
// max_new_tokens, stop at EOS and/or extra stop tokens (e.g. end of line), suppressed tokens (as
// transformers' suppress_tokens: -inf on the logits in greedy, on the log-probabilities in beam search),
// batched prompts with left padding, deterministic. Prompts come as token ids or as embeddings (SBT-Rec's hybrid prompts).
// Legend: B batch, P prompt length, N new tokens, K beams, V vocabulary.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sbtrec/common/config_io.h"
#include "sbtrec/llm/kv_cache.h"
#include "sbtrec/llm/llama.h"

namespace sbtrec::llm {

enum class EarlyStopping { kFalse, kTrue, kNever };

struct GenerationOptions {
  int64_t max_new_tokens = 64;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::kFalse;
  std::vector<int64_t> eos_token_ids;   // finishing tokens; empty = generate exactly max_new_tokens
  std::vector<int64_t> stop_token_ids;  // extra finishing tokens (e.g. those decoding to a newline)
  int64_t pad_token_id = -1;            // filler after a row finished; -1 = first finishing token, or 0
  std::vector<int64_t> suppress_token_ids;  // never generated (score -inf before each choice), e.g. added special tokens
  // Constrained decoding, as transformers' prefix_allowed_tokens_fn: the tokens row `row` (of the batch,
  // not the beam) may write after its beam's generated tokens `generated`; every other token scores
  // -inf (greedy: on the logits; beam search: on the log-probabilities). Empty = unconstrained. It must
  // never return no token for a row that has not finished.
  std::function<std::vector<int64_t>(int64_t row, const std::vector<int64_t>& generated)> allowed_tokens;
};

// The token sequences a constrained generation may write, as a prefix tree: each sequence is cut after
// its first token in `finishing` (EOS, end of turn), and one that has none gets finishing[0] appended
// (so every path ends where generation stops). allowed(prefix) lists the tokens that continue some
// sequence after `prefix`, in increasing order; a prefix that leaves the tree (or a finished one)
// allows `finishing` (the filler a finished row writes). sequences_ending(generated) gives the indices
// of the sequences equal to the generated tokens up to their first finishing token (several when
// sequences repeat), none when the generation did not complete one.
class TokenTrie {
 public:
  TokenTrie(const std::vector<std::vector<int64_t>>& sequences, const std::vector<int64_t>& finishing);
  std::vector<int64_t> allowed(const std::vector<int64_t>& prefix) const;
  std::vector<size_t> sequences_ending(const std::vector<int64_t>& generated) const;
  const std::vector<std::vector<int64_t>>& sequences() const { return sequences_; }

 private:
  struct Node {
    std::map<int64_t, size_t> next;  // token -> child
    std::vector<size_t> ends;        // sequences that end here (their last token is a finishing one)
  };
  const Node* walk(const std::vector<int64_t>& prefix) const;
  std::vector<Node> nodes_;
  std::vector<std::vector<int64_t>> sequences_;
  std::vector<int64_t> finishing_;
};

inline const config::Choices<EarlyStopping>& early_stopping_choices() {
  static const config::Choices<EarlyStopping> c = {
      {"false", EarlyStopping::kFalse}, {"true", EarlyStopping::kTrue}, {"never", EarlyStopping::kNever}};
  return c;
}
// The token ids (EOS, stops, padding) come from the tokenizer, not from the config.
inline void visit_fields(GenerationOptions& o, config::Visitor& v) {
  v.field("max_new_tokens", o.max_new_tokens, "tokens generated at most per case", config::at_least<int64_t>(1));
  v.field("num_beams", o.num_beams, "1 = greedy, more = beam search", config::at_least<int64_t>(1));
  v.field("length_penalty", o.length_penalty, "beam scores divided by length^this (transformers' semantics)");
  v.field("early_stopping", o.early_stopping, "beam search stop rule, as transformers' early_stopping",
          early_stopping_choices());
}

// input_ids [B, P] (left-padded when rows differ in length), attention_mask [B, P] or undefined.
// Returns prompt + generated ids [B, P + N] (N <= max_new_tokens; finished rows padded).
torch::Tensor generate(LlamaForCausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const GenerationOptions& options);

// A prompt prefix that every row of a batch shares (a chat template and instruction), run once: its
// key/value cache with one row. Rows continue it as if each prompt were prefix + its own tokens.
struct PromptPrefix {
  KVCache cache{0};
  int64_t length = 0;
};
// Runs `prefix_embeds` [1, Q, D] through the model (no grad) into a PromptPrefix.
PromptPrefix prefill_prefix(LlamaForCausalLMImpl& model, const torch::Tensor& prefix_embeds);

// inputs_embeds [B, P, D] (left-padded), attention_mask [B, P] or undefined. Returns new ids [B, N].
// With `prefix`, each row's prompt is prefix + its row of inputs_embeds (the rows' padding sits
// between the two and is masked; positions count real tokens, as without a prefix): the same tokens as
// generating from the whole prompts, without recomputing the prefix per row and batch.
torch::Tensor generate_from_embeds(LlamaForCausalLMImpl& model, const torch::Tensor& inputs_embeds,
                                   const torch::Tensor& attention_mask, const GenerationOptions& options,
                                   const PromptPrefix* prefix = nullptr);

}  // namespace sbtrec::llm
