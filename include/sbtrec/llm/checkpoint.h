// Hugging Face model directories and PEFT adapters, read and written directly (no conversion step):
//   model dir:   config.json + model.safetensors or model.safetensors.index.json with shards
//   adapter dir: adapter_config.json + adapter_model.safetensors (PEFT's key names)
// Weights are memory-mapped and placed on the target device/dtype one tensor at a time, onto modules
// built without a random init, so loading 7B in bf16 on a GPU needs no second host copy of the weights.
#pragma once
#include <string>

#include "sbtrec/llm/llama.h"

namespace sbtrec::llm {

// Loads a model from a Hugging Face directory (config.json + weights), a GGUF file (architecture from
// its metadata, quantized weights dequantized to `dtype`; see gguf_llama.h) or "default" (see
// resolve_model in options.h). `dtype`: floating weights' dtype (default: fp32 on CPU, the
// config's torch_dtype elsewhere). Shapes are checked against the config (errors name the key);
// missing or unexpected tensors are errors.
LlamaForCausalLM load_llama(const std::string& model, std::optional<torch::ScalarType> dtype = std::nullopt,
                            const torch::Device& device = torch::kCPU);
// On the CPU in float32, a GGUF model's Q8_0 / Q4_0 / Q4_1 weights also keep their blocks, which
// decoding streams instead of the float32 weights (nn::PackedWeight; same values up to rounding
// order). This drops them (llm.packed_decode: false) and returns how many layers had them.
int64_t drop_packed_weights(LlamaForCausalLMImpl& model);
// Writes config.json + model.safetensors (base weights only; tied lm_head omitted, as transformers).
void save_llama(const std::string& dir, LlamaForCausalLMImpl& model);

// What identifies a model's weights without reading them all (a 7B model is 13 GB): a SHA-256 over a
// GGUF file's size and first MiB (its header and metadata), or a Hugging Face directory's config.json
// and the names and sizes of its weight files. "default" is resolved first.
std::string model_identity(const std::string& model);

// PEFT adapter_config.json + adapter_model.safetensors with keys
// base_model.model.<module>.lora_A.weight / lora_B.weight.
void save_adapter(const std::string& dir, LlamaForCausalLMImpl& model, const std::string& base_model_name_or_path);
// Adds LoRA per adapter_config.json (r, lora_alpha, lora_dropout, target_modules, use_rslora) and
// loads its weights. On a model that already has adapters (resuming training): the same rank on the
// same modules keeps the parameter objects and takes the saved weights and scaling in place; any other
// adapter is replaced by one of the saved shape. Unsupported settings (DoRA, biases, rank patterns,
// ...) are errors.
void load_adapter(const std::string& dir, LlamaForCausalLMImpl& model);

}  // namespace sbtrec::llm
