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

struct PromptOptions {
  std::string templates;  // template file; "" = configs/prompts/<dataset name>.txt (relative to the working directory)
  TemplateFormat format = TemplateFormat::kSbtrec;
  bool user_token = true;  // a [UserEmb] slot after the history (needs the user's behavioural vector)
  bool hybrid = true;      // false: text-only prompts throughout (TALLRec-like baseline)
  bool shuffle_items = false;  // control: item slots read the vectors of a fixed random permutation of the items
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
}

}  // namespace sbtrec::prompt
