// The names of the registered evaluators (eval.mode's choices), without the evaluators' heavy headers
// (see sbtrec_evaluators.h), so the config can check eval.mode against them.
#pragma once
#include <string>
#include <vector>

namespace sbtrec::eval {

std::vector<std::string> evaluator_names();

}  // namespace sbtrec::eval
