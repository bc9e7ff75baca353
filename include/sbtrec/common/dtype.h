// Element-type lookups over the one table in dtype_table.h, used by the safetensors reader/writer,
// Hugging Face config.json (torch_dtype) and the programs' --dtype options.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

namespace sbtrec {

// "float32", "fp32", "float", "bfloat16", "bf16", ... (a table row's name or other names); nullopt if unknown.
std::optional<torch::ScalarType> dtype_from_name(const std::string& name);
// The row's name ("bfloat16"), as config.json's torch_dtype writes it. Throws Error for types not in the table.
std::string dtype_name(torch::ScalarType type);
// safetensors codes ("BF16") both ways; dtype_from_safetensors gives nullopt for unknown codes,
// safetensors_dtype throws CheckpointError for types safetensors cannot store.
std::optional<torch::ScalarType> dtype_from_safetensors(const std::string& code);
std::string safetensors_dtype(torch::ScalarType type);

}  // namespace sbtrec
