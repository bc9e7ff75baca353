// Hybrid prompts (see hybrid_prompt.h).
#include "sbtrec/prompt/hybrid_prompt.h"

#include <algorithm>
#include <regex>
#include <sstream>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/text.h"
#include "sbtrec/llm/special_tokens.h"

namespace sbtrec::prompt {
namespace {

struct Placeholders {
  const char *history, *candidates, *count;  // count: nullptr when the format has none
};
Placeholders placeholders(TemplateFormat f) {
  if (f == TemplateFormat::kLlara) return {"[HistoryHere]", "[CansHere]", nullptr};
  return {"{history}", "{candidates}", "{num_candidates}"};
}

std::string join(const std::vector<std::string>& titles, const char* slot, SlotPosition where) {
  std::string out;
  for (size_t i = 0; i < titles.size(); ++i) {
    if (i) out += ", ";
    // Before the title without a space: the title's tokens after the slot are then the ones that
    // begin an answer (no leading space), so copying what follows a slot writes the answer.
    if (slot && where == SlotPosition::kBeforeTitle) out += slot;
    out += titles[i];
    if (slot && where == SlotPosition::kAfterTitle) out += std::string(" ") + slot;
  }
  return out;
}

// Fixed stream codes, so adding a use never changes earlier draws.

}  // namespace

Templates load_templates(const std::string& path, TemplateFormat format) {
  const std::string text = read_file(path, "prompt.templates names a file with one template per line (see configs/prompts/)");
  Templates t;
  t.source = path;
  t.format = format;
  const Placeholders p = placeholders(format);
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // LLaRA's loader strips each line; ours too (a trailing space before the answer is no part of a template).
    line = strip(line);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(number);
    for (const char* needed : {p.history, p.candidates})
      if (line.find(needed) == std::string::npos)
        throw ConfigError(where + ": the template has no " + std::string(needed) + " placeholder; every line needs " +
                          p.history + " and " + p.candidates);
    if (format == TemplateFormat::kSbtrec) {
      static const std::regex brace("\\{[A-Za-z_]*\\}");
      for (std::sregex_iterator it(line.begin(), line.end(), brace), end; it != end; ++it) {
        const std::string name = it->str();
        if (name != p.history && name != p.candidates && name != p.count)
          throw ConfigError(where + ": unknown placeholder " + name + " (known: {history} {candidates} {num_candidates})");
      }
    }
    t.lines.push_back(line);
  }
  if (t.lines.empty()) throw ConfigError(path + ": no templates (one per line expected)");
  return t;
}

std::string templates_path(const PromptOptions& o, const std::string& dataset_name) {
  return o.templates.empty() ? "configs/prompts/" + dataset_name + ".txt" : o.templates;
}

SlotTokens add_slot_tokens(llm::Tokenizer& tokenizer, llm::LlamaForCausalLMImpl& model) {
  const auto ids = llm::add_special_tokens(tokenizer, model, {kHistorySlot, kCandidateSlot, kUserSlot});
  return {ids.at(0), ids.at(1), ids.at(2)};
}

size_t training_template(uint64_t seed, int64_t epoch, int64_t batch, size_t n) {
  CounterStream rng(stream_key(seed, Purpose::kTrainingTemplates, (uint64_t)epoch) ^ (uint64_t)batch);
  return (size_t)rng.below(n);
}

size_t evaluation_template(uint64_t seed, data::Split split, int64_t index, size_t n) {
  CounterStream rng(stream_key(seed, Purpose::kEvaluationTemplates, data::split_code(split)) ^ (uint64_t)index);
  return (size_t)rng.below(n);
}

PromptBuilder::PromptBuilder(Templates templates, const llm::Tokenizer& tokenizer, SlotTokens slots, llm::ChatTemplate chat,
                             std::string system, bool user_token, int64_t max_length, const PromptOptions& layout)
    : templates_(std::move(templates)), tokenizer_(tokenizer), slots_(slots), chat_(std::move(chat)),
      system_(std::move(system)), user_token_(user_token), max_length_(max_length),
      slot_position_(layout.slot_position), user_position_(layout.user_token_position), oracle_(layout.oracle_user_token) {
  if (templates_.lines.empty()) throw ConfigError(templates_.source + ": no templates");
  if (slots_.history < 0 || slots_.candidate < 0 || slots_.user < 0)
    throw ConfigError("PromptBuilder: the slot tokens are not in the tokenizer (call add_slot_tokens first)");
}

std::string PromptBuilder::render(size_t index, const std::vector<std::string>& history,
                                  const std::vector<std::string>& candidates, bool hybrid) const {
  const Placeholders p = placeholders(templates_.format);
  std::string h = join(history, hybrid ? kHistorySlot : nullptr, slot_position_);
  if (hybrid && user_token_ && user_position_ == UserTokenPosition::kHistory) h += std::string(" ") + kUserSlot;
  const std::vector<std::pair<std::string, std::string>> subs = {
      {p.history, h},
      {p.candidates, join(candidates, hybrid ? kCandidateSlot : nullptr, slot_position_)},
      {p.count ? p.count : "", std::to_string(candidates.size())}};
  // One pass over the template: text written in (titles) is never scanned for placeholders again.
  const std::string& line = templates_.lines.at(index);
  std::string out;
  for (size_t i = 0; i < line.size();) {
    bool replaced = false;
    for (const auto& [from, to] : subs)
      if (!from.empty() && line.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
        replaced = true;
        break;
      }
    if (!replaced) out += line[i++];
  }
  return out;
}

std::string PromptBuilder::answer_text(const std::string& title) const { return llm::assistant_turn(chat_, title); }

void PromptBuilder::check_length(int64_t tokens, bool with_answer, const std::string& what) const {
  if (tokens > max_length_)
    throw DataError(what + ": the prompt" + std::string(with_answer ? " and answer are " : " is ") + std::to_string(tokens) +
                    " tokens, more than the model's context of " + std::to_string(max_length_) +
                    "; use fewer candidates or a shorter history (never truncated)");
}

std::vector<int64_t> PromptBuilder::encode_answer(const std::string& title) const {
  return tokenizer_.encode(answer_text(title), false);
}

EncodedPrompt PromptBuilder::encode(size_t index, const data::Dataset& ds, const data::Sample& sample,
                                    const std::vector<int32_t>& candidates, bool hybrid, std::optional<int32_t> answer,
                                    const std::string& what) const {
  auto title = [&](int32_t item) -> const std::string& {
    const std::string& t = ds.titles.at(item);
    for (const char* slot : {kHistorySlot, kCandidateSlot, kUserSlot})
      if (t.find(slot) != std::string::npos)
        throw DataError(what + ": the title of item " + std::to_string(item) + " (\"" + t + "\") contains the slot token " +
                        slot + "; rename the item");
    return t;
  };
  std::vector<std::string> h, c;
  for (int32_t i : sample.history) h.push_back(title(i));
  for (int32_t i : candidates) c.push_back(title(i));
  EncodedPrompt out;
  out.ids = llm::encode_prompt(tokenizer_, chat_, render(index, h, c, hybrid),
                               system_.empty() ? std::nullopt : std::optional<std::string>(system_));
  // The user token as the prompt's last token, at the start of the answer's turn (after the chat
  // format's assistant header).
  if (hybrid && user_token_ && user_position_ == UserTokenPosition::kAnswer) out.ids.push_back(slots_.user);
  out.prompt_length = (int64_t)out.ids.size();
  // Slots in token order; the k-th slot of a kind is the k-th item of its list.
  size_t nh = 0, nc = 0, nu = 0;
  for (int64_t pos = 0; pos < out.prompt_length; ++pos) {
    const int64_t id = out.ids[pos];
    if (id == slots_.history) {
      if (nh >= sample.history.size()) throw DataError(what + ": the prompt holds more [HistoryEmb] slots than history items");
      out.slots.push_back({pos, SlotKind::kHistory, sample.history[nh++]});
    } else if (id == slots_.candidate) {
      if (nc >= candidates.size()) throw DataError(what + ": the prompt holds more [CansEmb] slots than candidates");
      out.slots.push_back({pos, SlotKind::kCandidate, candidates[nc++]});
    } else if (id == slots_.user) {
      out.slots.push_back({pos, SlotKind::kUser, oracle_ ? sample.target : -1});
      ++nu;
    }
  }
  if (hybrid) {
    // Each placeholder appears once per template in practice; a template naming one twice repeats
    // its slots, which the counts below reject (each item must own exactly one slot).
    if (nh != sample.history.size() || nc != candidates.size() || nu != (user_token_ ? 1u : 0u))
      throw DataError(what + ": template " + std::to_string(index + 1) + " of " + templates_.source + " gives " +
                      std::to_string(nh) + " history, " + std::to_string(nc) + " candidate and " + std::to_string(nu) +
                      " user slots for " + std::to_string(sample.history.size()) + " history items and " +
                      std::to_string(candidates.size()) + " candidates; use each placeholder once");
  }
  if (answer) {
    const auto a = encode_answer(title(*answer));
    out.ids.insert(out.ids.end(), a.begin(), a.end());
  }
  check_length((int64_t)out.ids.size(), answer.has_value(), what);
  return out;
}

PromptBatch collate(const std::vector<EncodedPrompt>& prompts, int64_t pad_id, bool left_pad) {
  if (prompts.empty()) throw DataError("collate: no prompts");
  const int64_t B = (int64_t)prompts.size();
  int64_t T = 0, S = 0;
  for (const auto& p : prompts) {
    T = std::max<int64_t>(T, (int64_t)p.ids.size());
    S += (int64_t)p.slots.size();
  }
  PromptBatch b;
  b.input_ids = torch::full({B, T}, pad_id, torch::kInt64);  // [B, T]
  b.attention_mask = torch::zeros({B, T}, torch::kInt64);    // [B, T]
  b.labels = torch::full({B, T}, -100, torch::kInt64);        // [B, T]
  b.slot_batch = torch::empty({S}, torch::kInt64);            // [S]
  b.slot_position = torch::empty({S}, torch::kInt64);
  b.slot_kind = torch::empty({S}, torch::kInt64);
  b.slot_item = torch::empty({S}, torch::kInt64);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  auto labels = b.labels.accessor<int64_t, 2>();
  auto sb = b.slot_batch.accessor<int64_t, 1>(), sp = b.slot_position.accessor<int64_t, 1>();
  auto sk = b.slot_kind.accessor<int64_t, 1>(), si = b.slot_item.accessor<int64_t, 1>();
  int64_t s = 0;
  for (int64_t r = 0; r < B; ++r) {
    const auto& p = prompts[r];
    const int64_t n = (int64_t)p.ids.size(), offset = left_pad ? T - n : 0;
    for (int64_t t = 0; t < n; ++t) {
      ids[r][offset + t] = p.ids[t];
      mask[r][offset + t] = 1;
      if (t >= p.prompt_length) labels[r][offset + t] = p.ids[t];
    }
    for (const auto& slot : p.slots) {
      sb[s] = r;
      sp[s] = offset + slot.position;
      sk[s] = (int64_t)slot.kind;
      si[s] = slot.item;
      ++s;
    }
    b.prompt_lengths.push_back(p.prompt_length);
  }
  return b;
}

}  // namespace sbtrec::prompt
