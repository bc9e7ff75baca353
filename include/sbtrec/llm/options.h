// Options of the LLM stage (`llm:`): which checkpoint, in which dtype, on which device, and
// activation checkpointing. The architecture is not configured here: it is the model's config.json.
// LoRA (`lora:`) and generation (`generation:`) options live beside LoraOptions and GenerationOptions.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "sbtrec/common/config_io.h"

namespace sbtrec::llm {

enum class LlmDtype { kAuto, kFloat32, kBFloat16, kFloat16 };
inline const config::Choices<LlmDtype>& llm_dtypes() {
  static const config::Choices<LlmDtype> c = {{"auto", LlmDtype::kAuto},
                                              {"fp32", LlmDtype::kFloat32},
                                              {"bf16", LlmDtype::kBFloat16},
                                              {"fp16", LlmDtype::kFloat16}};
  return c;
}
// nullopt for auto: load_llama then picks fp32 on the CPU and the checkpoint's torch_dtype elsewhere.
std::optional<torch::ScalarType> scalar_type(LlmDtype d);

struct LlmOptions {
  std::string model;                     // Hugging Face model directory ("" = none: the run has no LLM)
  LlmDtype dtype = LlmDtype::kAuto;      // floating weights' dtype
  std::string device = "cpu";            // cpu | cuda | cuda:N
  bool activation_checkpointing = false; // recompute each layer in backward instead of keeping activations
};

config::Check<std::string> device_check();

inline void visit_fields(LlmOptions& o, config::Visitor& v) {
  v.field("model", o.model, "Hugging Face model directory (config.json + safetensors); empty = no LLM");
  v.field("dtype", o.dtype, "weights' dtype; auto = fp32 on the CPU, the checkpoint's torch_dtype elsewhere", llm_dtypes());
  v.field("device", o.device, "where the model runs", device_check());
  v.field("activation_checkpointing", o.activation_checkpointing,
          "recompute each decoder layer in backward (less memory, ~1.3x compute)");
}

}  // namespace sbtrec::llm
