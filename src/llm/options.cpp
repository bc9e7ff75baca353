// LLM-stage options (see options.h).
#include "sbtrec/llm/options.h"

#include <regex>

#include "sbtrec/common/dtype.h"

namespace sbtrec::llm {

std::optional<torch::ScalarType> scalar_type(LlmDtype d) {
  // The choice names are names of the one dtype table (common/dtype_table.h); "auto" is not in it.
  return d == LlmDtype::kAuto ? std::nullopt : dtype_from_name(config::choice_name(llm_dtypes(), d));
}

config::Check<std::string> device_check() {
  return {[](const std::string& d) {
            static const std::regex ok("cpu|cuda(:[0-9]+)?");
            return std::regex_match(d, ok) ? std::string() : "must be cpu, cuda or cuda:N (got '" + d + "')";
          },
          "cpu, cuda, cuda:N"};
}

}  // namespace sbtrec::llm
