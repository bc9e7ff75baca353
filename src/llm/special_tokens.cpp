// Added special tokens kept in sync between tokenizer and model (see special_tokens.h).
#include "sbtrec/llm/special_tokens.h"

#include <algorithm>

#include "sbtrec/common/error.h"

namespace sbtrec::llm {

std::vector<int64_t> add_special_tokens(Tokenizer& tokenizer, LlamaForCausalLMImpl& model,
                                        const std::vector<std::string>& tokens) {
  if (model.config.vocab_size < tokenizer.vocab_size())
    throw ConfigError("add_special_tokens: the model has " + std::to_string(model.config.vocab_size) +
                      " embedding rows but the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                      " ids; load the tokenizer that belongs to this checkpoint (its tokenizer.model or tokenizer.json)");
  auto ids = tokenizer.add_special_tokens(tokens);
  // A model with spare rows (a vocabulary padded past the tokenizer's) needs no new ones.
  model.add_tokens(tokenizer.vocab_size() - model.config.vocab_size);
  return ids;
}

void suppress_added_tokens(const Tokenizer& tokenizer, GenerationOptions& options) {
  auto& out = options.suppress_token_ids;
  for (int64_t id : tokenizer.added_token_ids())
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
}

}  // namespace sbtrec::llm
