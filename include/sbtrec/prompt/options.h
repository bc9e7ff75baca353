// Options of the prompt stage (`prompt:`): which template file, in which placeholder format, and
// whether hybrid prompts carry a user token (hybrid_prompt.h).
#pragma once
#include <string>

#include "sbtrec/common/config_io.h"

namespace sbtrec::prompt {

// sbtrec: {history}, {candidates} and {num_candidates} (configs/prompts/<dataset>.txt, the project's
// wording); llara: LLaRA's own files (../shared/data/llara/prompts/), [HistoryHere] / [CansHere],
// each line stripped as LLaRA reads them.
enum class TemplateFormat { kSbtrec, kLlara };
inline const config::Choices<TemplateFormat>& template_formats() {
  static const config::Choices<TemplateFormat> c = {{"sbtrec", TemplateFormat::kSbtrec}, {"llara", TemplateFormat::kLlara}};
  return c;
}

// Where an item's slot sits: after its title (LLaRA, the paper: "title [CansEmb]") or before it
// ("[CansEmb]title", no space: the title's tokens are those an answer begins with), so that the title
// is what follows the token, the pattern that pretrained induction heads copy: having seen a token,
// they continue with what followed it the last time.
enum class SlotPosition { kAfterTitle, kBeforeTitle };
inline const config::Choices<SlotPosition>& slot_positions() {
  static const config::Choices<SlotPosition> c = {{"after_title", SlotPosition::kAfterTitle},
                                                  {"before_title", SlotPosition::kBeforeTitle}};
  return c;
}
// Where the user token sits: right after the history (the paper) or as the last prompt token, at the
// start of the answer's turn, directly before the title the model is to write.
enum class UserTokenPosition { kHistory, kAnswer };
inline const config::Choices<UserTokenPosition>& user_token_positions() {
  static const config::Choices<UserTokenPosition> c = {{"history", UserTokenPosition::kHistory},
                                                       {"answer", UserTokenPosition::kAnswer}};
  return c;
}

struct PromptOptions {
  std::string templates;  // template file; "" = configs/prompts/<dataset name>.txt (relative to the working directory)
  TemplateFormat format = TemplateFormat::kSbtrec;
  bool user_token = true;  // a [UserEmb] slot after the history (needs the user's behavioural vector)
  bool hybrid = true;      // false: text-only prompts throughout (TALLRec-like baseline)
  bool shuffle_items = false;  // control: item slots read the vectors of a fixed random permutation of the items
  SlotPosition slot_position = SlotPosition::kAfterTitle;
  UserTokenPosition user_token_position = UserTokenPosition::kHistory;
  bool oracle_user_token = false;  // control: the user slot carries the target item's own token
};

inline void visit_fields(PromptOptions& o, config::Visitor& v) {
  v.field("templates", o.templates,
          "template file, one template per line; empty = configs/prompts/<dataset>.txt (movielens, lastfm, steam)");
  v.field("format", o.format,
          "sbtrec: {history} {candidates} {num_candidates} placeholders; llara: LLaRA's files ([HistoryHere] [CansHere])",
          template_formats());
  v.field("user_token", o.user_token, "a user behavioural token ([UserEmb]) after the history in hybrid prompts");
  v.field("hybrid", o.hybrid, "behavioural-token slots in the prompts; false = text-only prompts (a TALLRec-like baseline)");
  v.field("shuffle_items", o.shuffle_items,
          "control: each item's slot carries the vector of another item (a fixed seeded permutation), so tokens are "
          "consistent but wrong");
  v.field("slot_position", o.slot_position,
          "after_title: 'title [CansEmb]' (LLaRA, the paper); before_title: '[CansEmb]title', so a token is followed by "
          "its title",
          slot_positions());
  v.field("user_token_position", o.user_token_position,
          "history: the user token right after the history (the paper); answer: the last prompt token, at the start "
          "of the answer's turn",
          user_token_positions());
  v.field("oracle_user_token", o.oracle_user_token,
          "control (never a method): the user slot carries the target item's own token instead of the user's, which "
          "measures whether the LLM can find and copy the candidate whose token it is given");
}

}  // namespace sbtrec::prompt
