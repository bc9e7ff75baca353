// Hybrid prompts (paper section 3.4): instruction text, item titles and behavioural-token slots. A
// template line holds the history and the candidates as placeholders; each title is followed by its
// slot (" [HistoryEmb]" / " [CansEmb]", as LLaRA writes them; or precedes it, prompt.slot_position),
// the user token " [UserEmb]" (when on) follows the history (or ends the prompt, at the start of the
// answer's turn: prompt.user_token_position), and titles are joined by ", ". Slots are added special tokens whose embedding
// rows the model replaces with aligner outputs. A text-only prompt has titles and no slots (baselines,
// curriculum steps). The answer (supervised alone) is the target title and the format's end of turn.
// Legend: B prompts in a batch, T tokens, S slots in the batch.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "sbtrec/data/dataset.h"
#include "sbtrec/llm/chat_format.h"
#include "sbtrec/llm/llama.h"
#include "sbtrec/llm/tokenizer.h"
#include "sbtrec/prompt/options.h"

namespace sbtrec::prompt {

// Slot token strings, added to the tokenizer as special tokens.
inline constexpr const char* kHistorySlot = "[HistoryEmb]";
inline constexpr const char* kCandidateSlot = "[CansEmb]";
inline constexpr const char* kUserSlot = "[UserEmb]";

struct Templates {
  std::string source;  // the file, for messages
  TemplateFormat format = TemplateFormat::kSbtrec;
  std::vector<std::string> lines;
};

// Reads one template per non-empty line. Throws ConfigError naming file:line when a line lacks the
// history or candidates placeholder, or (sbtrec format) holds an unknown {placeholder}.
Templates load_templates(const std::string& path, TemplateFormat format);
// The file `options` names, or configs/prompts/<dataset_name>.txt.
std::string templates_path(const PromptOptions& options, const std::string& dataset_name);

// The slot tokens' ids, after add_slot_tokens.
struct SlotTokens {
  int64_t history = -1, candidate = -1, user = -1;
};
// Adds the three slot tokens to the tokenizer and the model's embedding (llm::add_special_tokens);
// ids already present are kept.
SlotTokens add_slot_tokens(llm::Tokenizer& tokenizer, llm::LlamaForCausalLMImpl& model);

enum class SlotKind { kHistory, kCandidate, kUser };
struct Slot {
  int64_t position = 0;  // index into EncodedPrompt::ids
  SlotKind kind = SlotKind::kHistory;
  int32_t item = -1;  // the item a history / candidate slot stands for; -1 for the user slot (the target
                      // under prompt.oracle_user_token)
};

struct EncodedPrompt {
  std::vector<int64_t> ids;    // prompt, then the answer when one was asked for
  int64_t prompt_length = 0;   // ids before the answer
  std::vector<Slot> slots;     // in order of position
};

// Chooses templates reproducibly: in training one template per batch from (seed, epoch, batch); in
// evaluation one per case from (seed, split, case index), the same for every model and run.
size_t training_template(uint64_t seed, int64_t epoch, int64_t batch, size_t num_templates);
size_t evaluation_template(uint64_t seed, data::Split split, int64_t index, size_t num_templates);

class PromptBuilder {
 public:
  // `chat`: how the prompt is wrapped (format none: raw text with BOS, as LLaRA); `system`: the chat
  // system message (empty = the template's default). `max_length`: the model's context; a longer
  // prompt is an error, never a truncation.
  // `layout`: where slots and the user token sit (its user_token decides nothing here: `user_token` does).
  PromptBuilder(Templates templates, const llm::Tokenizer& tokenizer, SlotTokens slots, llm::ChatTemplate chat,
                std::string system, bool user_token, int64_t max_length, const PromptOptions& layout = {});

  size_t num_templates() const { return templates_.lines.size(); }
  const llm::ChatTemplate& chat() const { return chat_; }

  // The user message: template `index` with the history and candidates written in.
  std::string render(size_t index, const std::vector<std::string>& history, const std::vector<std::string>& candidates,
                     bool hybrid) const;
  // What follows the prompt in training: `title` and the end of turn ("\n" raw, as LLaRA; the chat
  // format's end-of-turn token otherwise).
  std::string answer_text(const std::string& title) const;
  // answer_text(title) tokenized on its own: the ids encode() appends after the prompt.
  std::vector<int64_t> encode_answer(const std::string& title) const;
  // Throws DataError naming `what` when `tokens` (a prompt, with its answer if `with_answer`) exceed
  // the model's context: prompts are never truncated.
  void check_length(int64_t tokens, bool with_answer, const std::string& what) const;

  // Tokenized prompt (chat-wrapped) for `sample` with `candidates` (item ids), hybrid or text-only;
  // with `answer`, that item's answer_text follows, tokenized on its own (so the prompt's ids are the
  // same in training and evaluation). LLaRA's collater tokenizes (prompt, target) as a Llama text
  // pair instead, which puts a second BOS before the answer; here the answer follows the prompt
  // directly and only its tokens are labelled. `what` names the sample in errors ("train sample 12").
  // Throws DataError when a title holds a slot token or the result exceeds max_length.
  EncodedPrompt encode(size_t index, const data::Dataset& ds, const data::Sample& sample,
                       const std::vector<int32_t>& candidates, bool hybrid, std::optional<int32_t> answer,
                       const std::string& what) const;

 private:
  Templates templates_;
  const llm::Tokenizer& tokenizer_;
  SlotTokens slots_;
  llm::ChatTemplate chat_;
  std::string system_;
  bool user_token_;
  int64_t max_length_;
  SlotPosition slot_position_;
  UserTokenPosition user_position_;
  bool oracle_;
};

// A batch of encoded prompts as tensors. Training pads on the right; generation on the left.
struct PromptBatch {
  torch::Tensor input_ids;       // [B, T] int64, padding = pad_id
  torch::Tensor attention_mask;  // [B, T] int64, 1 = real token
  torch::Tensor labels;          // [B, T] int64: the answer's ids, -100 elsewhere (HF convention, unshifted)
  torch::Tensor slot_batch, slot_position;  // [S] int64: where each slot sits
  torch::Tensor slot_kind;       // [S] int64: SlotKind
  torch::Tensor slot_item;       // [S] int64: item id, -1 for the user slot
  std::vector<int64_t> prompt_lengths;  // per row, before padding
};
PromptBatch collate(const std::vector<EncodedPrompt>& prompts, int64_t pad_id, bool left_pad);

}  // namespace sbtrec::prompt
