// LLM-stage options (see options.h).
#include "sbtrec/llm/options.h"

#include <regex>

namespace sbtrec::llm {

std::optional<torch::ScalarType> scalar_type(LlmDtype d) {
  switch (d) {
    case LlmDtype::kFloat32: return torch::kFloat32;
    case LlmDtype::kBFloat16: return torch::kBFloat16;
    case LlmDtype::kFloat16: return torch::kFloat16;
    case LlmDtype::kAuto: break;
  }
  return std::nullopt;
}

config::Check<std::string> device_check() {
  return {[](const std::string& d) {
            static const std::regex ok("cpu|cuda(:[0-9]+)?");
            return std::regex_match(d, ok) ? std::string() : "must be cpu, cuda or cuda:N (got '" + d + "')";
          },
          "cpu, cuda, cuda:N"};
}

}  // namespace sbtrec::llm
