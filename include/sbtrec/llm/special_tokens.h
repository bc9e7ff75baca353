// Added special tokens: placeholders in the prompt text (SBT-Rec's "[HistoryEmb]", "[CansEmb]", "[PH]")
// whose embedding rows stand in for behavioural embeddings. Tokenizer and model must agree on their ids,
// so one call changes both; they are inputs only, so generation is told never to emit them.
#pragma once
#include <string>
#include <vector>

#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/llama.h"
#include "sbtrec/llm/tokenizer.h"

namespace sbtrec::llm {

// Adds `tokens` to the tokenizer as special tokens (matched whole in text, as transformers'
// add_special_tokens({"additional_special_tokens": ...})) and grows the model's embedding (and untied
// lm_head) to the tokenizer's new vocabulary size, as resize_token_embeddings(len(tokenizer)) does.
// Returns their ids, in order; tokens added before keep their ids. Throws ConfigError when the model
// has fewer rows than the tokenizer has ids (they do not belong together).
std::vector<int64_t> add_special_tokens(Tokenizer& tokenizer, LlamaForCausalLMImpl& model,
                                        const std::vector<std::string>& tokens);

// Appends the tokenizer's added tokens to options.suppress_token_ids (each id once).
void suppress_added_tokens(const Tokenizer& tokenizer, GenerationOptions& options);

}  // namespace sbtrec::llm
