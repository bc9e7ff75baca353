// Hugging Face checkpoints and PEFT adapters (see checkpoint.h).
#include "sbtrec/llm/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "sbtrec/common/dtype.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors.h"

namespace sbtrec::llm {
namespace {

const std::string kPeftPrefix = "base_model.model.";

// Tensors of the model that a checkpoint must provide (a tied lm_head is the embedding).
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(LlamaForCausalLMImpl& m, bool include_lora) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) {
    const bool is_lora = p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos;
    if (is_lora != include_lora) continue;
    if (m.config.tie_word_embeddings && p.key() == "lm_head.weight") continue;
    out.emplace_back(p.key(), p.value());
  }
  return out;
}

nlohmann::json read_json(const std::string& path, const std::string& hint) {
  try {
    return nlohmann::json::parse(read_file(path, hint));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": invalid JSON (" + e.what() + ")");
  } catch (const IoError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace

LlamaForCausalLM load_llama(const std::string& dir, std::optional<torch::ScalarType> dtype, const torch::Device& device) {
  LlamaConfig cfg = load_llama_config(dir + "/config.json");
  safetensors::ShardedCheckpoint ckpt(dir);
  const torch::ScalarType target = dtype ? *dtype : (device.is_cpu() ? torch::kFloat32 : cfg.dtype());
  LlamaForCausalLM model{nullptr};
  {
    SkipInit no_init;  // weights are replaced below; no random init, untouched memory
    model = LlamaForCausalLM(cfg);
  }
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& [name, param] : checkpoint_tensors(*model, false)) {
    if (!ckpt.contains(name))
      throw CheckpointError(ckpt.source() + ": missing tensor '" + name + "' (config.json describes a model that needs it)");
    const auto shape = ckpt.shape(name);
    if (shape != param.sizes().vec())
      throw CheckpointError(ckpt.source() + ": tensor '" + name + "' has shape " + c10::str(at::IntArrayRef(shape)) +
                            " but config.json implies " + c10::str(param.sizes()));
    // Swap the storage: the uninitialised placeholder is released, the weight lives on `device`.
    // (set_data keeps the tensor object, so a tied lm_head, which is the same object, follows.)
    param.set_data(ckpt.get(name, target, device));
    used.insert(name);
  }
  for (const auto& name : ckpt.names()) {
    if (used.count(name)) continue;
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // derived, some checkpoints store it
    if (cfg.tie_word_embeddings && name == "lm_head.weight") continue;     // tied: the embedding is used
    throw CheckpointError(ckpt.source() + ": unexpected tensor '" + name + "' (not part of a " +
                          std::to_string(cfg.num_hidden_layers) + "-layer Llama; wrong config.json?)");
  }
  for (auto& b : model->buffers()) b.set_data(b.to(device));
  for (auto& p : model->parameters())  // norms keep their init ones otherwise; all floating weights in `target`
    if (p.device() != device || p.scalar_type() != target) p.set_data(p.to(device, target));
  model->config.torch_dtype = dtype_name(target);
  model->eval();
  return model;
}

void save_llama(const std::string& dir, LlamaForCausalLMImpl& model) {
  make_dirs(dir);
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [name, t] : checkpoint_tensors(model, false)) tensors[name] = t;
  safetensors::save(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  atomic_write_string(dir + "/config.json", llama_config_to_json(model.config));
}

void save_adapter(const std::string& dir, LlamaForCausalLMImpl& model, const std::string& base_model_name_or_path) {
  if (model.lora.r <= 0) throw CheckpointError("save_adapter: the model has no LoRA adapter");
  make_dirs(dir);
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [name, t] : checkpoint_tensors(model, true)) tensors[kPeftPrefix + name] = t;
  nlohmann::json cfg = {{"peft_type", "LORA"},
                        {"task_type", "CAUSAL_LM"},
                        {"r", model.lora.r},
                        {"lora_alpha", model.lora.alpha},
                        {"lora_dropout", model.lora.dropout},
                        {"target_modules", model.lora.target_modules},
                        {"use_rslora", model.lora.use_rslora},
                        {"bias", "none"},
                        {"fan_in_fan_out", false},
                        {"inference_mode", true},
                        {"base_model_name_or_path", base_model_name_or_path}};
  safetensors::save(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  atomic_write_string(dir + "/adapter_config.json", cfg.dump(2) + "\n");
}

void load_adapter(const std::string& dir, LlamaForCausalLMImpl& model) {
  const std::string cfg_path = dir + "/adapter_config.json";
  auto j = read_json(cfg_path, "A PEFT adapter directory holds adapter_config.json and adapter_model.safetensors");
  auto fail = [&](const std::string& what) -> void { throw CheckpointError(cfg_path + ": " + what); };
  if (j.value("peft_type", std::string()) != "LORA") fail("peft_type must be \"LORA\"");
  if (!j.contains("r") || !j["r"].is_number_integer()) fail("'r' must be an integer");
  if (j.value("use_dora", false)) fail("use_dora is true: DoRA adapters are not supported");
  if (j.value("bias", std::string("none")) != "none") fail("bias must be \"none\"");
  if (j.value("fan_in_fan_out", false)) fail("fan_in_fan_out must be false for Llama");
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (j.contains(k) && !j[k].is_null() && !j[k].empty()) fail(std::string(k) + " is not supported");
  for (const char* k : {"layers_to_transform", "modules_to_save"})
    if (j.contains(k) && !j[k].is_null() && !j[k].empty()) fail(std::string(k) + " is not supported");
  LoraOptions o;
  o.r = j["r"].get<int64_t>();
  o.alpha = j.value("lora_alpha", (double)o.r);
  o.dropout = j.value("lora_dropout", 0.0);
  if (!j.contains("target_modules") || !j["target_modules"].is_array())
    fail("target_modules must be a list of module names (regular expressions are not supported)");
  o.target_modules = j["target_modules"].get<std::vector<std::string>>();
  if (j.contains("use_rslora") && !j["use_rslora"].is_boolean()) fail("'use_rslora' must be true or false");
  o.use_rslora = j.value("use_rslora", false);
  // Resuming training: an adapter of the same rank on the same modules keeps its parameter objects
  // (an optimizer built over them stays valid) and only takes the new weights and scaling; any other
  // adapter is replaced by a fresh one of the saved shape.
  auto same_modules = [](std::vector<std::string> a, std::vector<std::string> b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    return a == b;
  };
  if (model.lora.r == o.r && same_modules(model.lora.target_modules, o.target_modules) && !model.lora_layers().empty()) {
    for (auto& l : model.lora_layers()) {
      l->unmerge();  // a merged weight holds the old adapter's product
      l->scaling = o.scaling();
      l->dropout_p = o.dropout;
    }
    model.lora = o;
  } else {
    model.add_lora(o);
  }
  safetensors::File file(dir + "/adapter_model.safetensors");
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& [name, param] : checkpoint_tensors(model, true)) {
    std::string key = kPeftPrefix + name;
    if (!file.contains(key)) {
      // Some PEFT versions keep the adapter name in the key.
      const auto dot = name.rfind(".weight");
      const std::string alt = kPeftPrefix + name.substr(0, dot) + ".default.weight";
      if (!file.contains(alt)) throw CheckpointError(file.path() + ": missing adapter tensor '" + key + "'");
      key = alt;
    }
    auto t = file.get(key, param.scalar_type(), param.device());
    if (t.sizes() != param.sizes())
      throw CheckpointError(file.path() + ": tensor '" + key + "' has shape " + c10::str(t.sizes()) + ", expected " +
                            c10::str(param.sizes()));
    param.copy_(t);
    used.insert(key);
  }
  for (const auto& name : file.names())
    if (!used.count(name)) throw CheckpointError(file.path() + ": unexpected tensor '" + name + "'");
}

}  // namespace sbtrec::llm
