// Llama architecture hyperparameters, read from a Hugging Face config.json. Anything the
// implementation does not support (rope_scaling, biases, other activations or architectures) is a
// clear error rather than a silent difference. Presets: llama2_7b() and small test configs.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sbtrec::llm {

struct LlamaConfig {
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 0;  // 0 = hidden_size / num_attention_heads
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 4096;
  int64_t vocab_size = 32000;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids = {2};
  int64_t pad_token_id = -1;  // -1: none
  std::string torch_dtype = "float16";

  int64_t dim_per_head() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  torch::ScalarType dtype() const;  // torch_dtype as a ScalarType
  void validate(const std::string& source) const;  // throws ConfigError naming the field
};

// Reads `path` (a config.json); throws ConfigError naming the file and field.
LlamaConfig load_llama_config(const std::string& path);
LlamaConfig parse_llama_config(const std::string& json_text, const std::string& source);
// The same fields as a Hugging Face config.json (LlamaForCausalLM), for exporting.
std::string llama_config_to_json(const LlamaConfig& c);

LlamaConfig llama2_7b();
// A tiny config for tests: 2 layers, width 64, 4 heads (2 key/value heads), vocab 128.
LlamaConfig llama_tiny();
// The CPU benchmark shape: 8 layers, width 512, 8 heads, intermediate 1376, vocab 32000.
LlamaConfig llama_bench_small();

torch::ScalarType parse_dtype(const std::string& name);  // "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16"

}  // namespace sbtrec::llm
