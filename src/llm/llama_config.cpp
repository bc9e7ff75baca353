// LlamaConfig from/to Hugging Face config.json (see llama_config.h).
#include "sbtrec/llm/llama_config.h"

#include <nlohmann/json.hpp>

#include "sbtrec/common/dtype.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec::llm {

torch::ScalarType parse_dtype(const std::string& n) {
  const auto t = dtype_from_name(n);
  // The model computes in these three; the table knows more (integer types for checkpoints' ids).
  if (t == torch::kFloat32 || t == torch::kBFloat16 || t == torch::kFloat16) return *t;
  throw ConfigError("unknown dtype '" + n + "': use fp32, bf16 or fp16");
}

torch::ScalarType LlamaConfig::dtype() const { return parse_dtype(torch_dtype); }

void LlamaConfig::validate(const std::string& source) const {
  auto require = [&](bool ok, const std::string& field, const std::string& what) {
    if (!ok) throw ConfigError(source + ": '" + field + "' " + what);
  };
  require(hidden_size > 0, "hidden_size", "must be positive");
  require(intermediate_size > 0, "intermediate_size", "must be positive");
  require(num_hidden_layers > 0, "num_hidden_layers", "must be positive");
  require(num_attention_heads > 0, "num_attention_heads", "must be positive");
  require(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0, "num_key_value_heads",
          "must divide num_attention_heads");
  require(head_dim > 0 || hidden_size % num_attention_heads == 0, "num_attention_heads", "must divide hidden_size");
  require(dim_per_head() % 2 == 0, "head_dim", "must be even (rotary embeddings rotate pairs)");
  require(vocab_size > 0, "vocab_size", "must be positive");
  require(rms_norm_eps > 0, "rms_norm_eps", "must be positive");
  require(rope_theta > 0, "rope_theta", "must be positive");
  require(max_position_embeddings > 0, "max_position_embeddings", "must be positive");
}

LlamaConfig parse_llama_config(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(source + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw ConfigError(source + ": must be a JSON object");
  auto fail = [&](const std::string& field, const std::string& what) -> void {
    throw ConfigError(source + ": '" + field + "' " + what);
  };
  if (j.contains("model_type") && j["model_type"] != "llama")
    fail("model_type", "is " + j["model_type"].dump() + "; only Llama checkpoints (model_type \"llama\") are supported");
  if (j.contains("architectures") && j["architectures"].is_array())
    for (const auto& a : j["architectures"])
      if (a != "LlamaForCausalLM") fail("architectures", "lists " + a.dump() + "; only LlamaForCausalLM is supported");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail("rope_scaling", "is set (" + j["rope_scaling"].dump() + "); rope scaling is not supported, so this checkpoint "
                         "would silently compute something else");
  if (j.value("attention_bias", false)) fail("attention_bias", "is true; biased attention projections are not supported");
  if (j.value("mlp_bias", false)) fail("mlp_bias", "is true; biased MLP projections are not supported");
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") fail("hidden_act", "must be \"silu\" (SwiGLU)");
  if (j.contains("pretraining_tp") && j["pretraining_tp"].is_number() && j["pretraining_tp"].get<int>() != 1)
    fail("pretraining_tp", "must be 1");

  LlamaConfig c;
  auto get_int = [&](const char* key, int64_t& dst, bool required) {
    if (!j.contains(key) || j[key].is_null()) {
      if (required) fail(key, "is missing (a Llama config.json has it)");
      return;
    }
    if (!j[key].is_number_integer()) fail(key, "must be an integer, got " + j[key].dump());
    dst = j[key].get<int64_t>();
  };
  auto get_num = [&](const char* key, double& dst) {
    if (!j.contains(key) || j[key].is_null()) return;
    if (!j[key].is_number()) fail(key, "must be a number, got " + j[key].dump());
    dst = j[key].get<double>();
  };
  get_int("hidden_size", c.hidden_size, true);
  get_int("intermediate_size", c.intermediate_size, true);
  get_int("num_hidden_layers", c.num_hidden_layers, true);
  get_int("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  get_int("num_key_value_heads", c.num_key_value_heads, false);
  get_int("head_dim", c.head_dim, false);
  get_int("vocab_size", c.vocab_size, true);
  get_int("max_position_embeddings", c.max_position_embeddings, false);
  get_num("rms_norm_eps", c.rms_norm_eps);
  get_num("rope_theta", c.rope_theta);
  // transformers >= 5 writes rope settings as rope_parameters {"rope_type", "rope_theta"}.
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const auto& rp = j["rope_parameters"];
    const std::string type = rp.value("rope_type", std::string("default"));
    if (type != "default") fail("rope_parameters.rope_type", "is \"" + type + "\"; only the default rotary embedding is supported");
    if (rp.contains("rope_theta")) {
      if (!rp["rope_theta"].is_number()) fail("rope_parameters.rope_theta", "must be a number");
      c.rope_theta = rp["rope_theta"].get<double>();
    }
  }
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) fail("tie_word_embeddings", "must be true or false");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  get_int("bos_token_id", c.bos_token_id, false);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    c.eos_token_ids.clear();
    if (j["eos_token_id"].is_number_integer()) c.eos_token_ids.push_back(j["eos_token_id"].get<int64_t>());
    else if (j["eos_token_id"].is_array())
      for (const auto& e : j["eos_token_id"]) {
        if (!e.is_number_integer()) fail("eos_token_id", "must be an integer or a list of integers");
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    else fail("eos_token_id", "must be an integer or a list of integers");
  }
  get_int("pad_token_id", c.pad_token_id, false);
  const char* dtype_key = j.contains("torch_dtype") ? "torch_dtype" : "dtype";
  if (j.contains(dtype_key) && j[dtype_key].is_string()) {
    c.torch_dtype = j[dtype_key].get<std::string>();
    try {
      parse_dtype(c.torch_dtype);
    } catch (const ConfigError&) {
      fail(dtype_key, "is \"" + c.torch_dtype + "\"; supported: float32, bfloat16, float16");
    }
  }
  c.validate(source);
  return c;
}

LlamaConfig load_llama_config(const std::string& path) {
  std::string text;
  try {
    text = read_file(path, "A Hugging Face model directory holds config.json next to its weights");
  } catch (const IoError& e) {
    throw ConfigError(e.what());
  }
  return parse_llama_config(text, path);
}

std::string llama_config_to_json(const LlamaConfig& c) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads},
                      {"head_dim", c.dim_per_head()},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"rope_theta", c.rope_theta},
                      {"rope_scaling", nullptr},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"vocab_size", c.vocab_size},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"attention_bias", false},
                      {"mlp_bias", false},
                      {"bos_token_id", c.bos_token_id},
                      {"eos_token_id", c.eos_token_ids.size() == 1 ? nlohmann::json(c.eos_token_ids[0]) : nlohmann::json(c.eos_token_ids)},
                      {"torch_dtype", c.torch_dtype}};
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  return j.dump(2) + "\n";
}

LlamaConfig llama2_7b() { return LlamaConfig{}; }

LlamaConfig llama_tiny() {
  LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 160;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 256;
  c.vocab_size = 128;
  c.torch_dtype = "float32";
  c.pad_token_id = 0;
  return c;
}

LlamaConfig llama_bench_small() {
  LlamaConfig c;
  c.hidden_size = 512;
  c.intermediate_size = 1376;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.max_position_embeddings = 1024;
  c.torch_dtype = "float32";
  return c;
}

}  // namespace sbtrec::llm
