// Hugging Face checkpoints and PEFT adapters (see checkpoint.h).
#include "sbtrec/llm/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "sbtrec/common/digest.h"
#include "sbtrec/common/dtype.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/gguf_llama.h"
#include "sbtrec/llm/options.h"

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

namespace {

// Where load_llama takes weights from: a Hugging Face directory or a GGUF file, by HF tensor name.
struct WeightSource {
  virtual ~WeightSource() = default;
  virtual std::string source() const = 0;
  virtual std::vector<std::string> names() const = 0;  // HF names
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  virtual torch::Tensor get(const std::string& name, torch::ScalarType dtype, const torch::Device& device) const = 0;
  // The stored blocks of a quantized tensor, packed beside its float32 `weight` for decoding; null
  // where the source holds no packable blocks for it.
  virtual std::shared_ptr<const nn::PackedWeight> packed(const std::string&, const torch::Tensor&) const { return nullptr; }
};

struct HfDirectory : WeightSource {
  safetensors::ShardedCheckpoint ckpt;
  explicit HfDirectory(const std::string& dir) : ckpt(dir) {}
  std::string source() const override { return ckpt.source(); }
  std::vector<std::string> names() const override { return ckpt.names(); }
  bool contains(const std::string& n) const override { return ckpt.contains(n); }
  std::vector<int64_t> shape(const std::string& n) const override { return ckpt.shape(n); }
  torch::Tensor get(const std::string& n, torch::ScalarType t, const torch::Device& d) const override { return ckpt.get(n, t, d); }
};

// llama.cpp names mapped to HF names; q/k rows put back in HF order after dequantization.
struct GgufModel : WeightSource {
  gguf::File file;
  LlamaConfig config;
  std::map<std::string, std::string> to_gguf;  // HF name -> GGUF name
  explicit GgufModel(const std::string& path) : file(path), config(llama_config_from_gguf(file.header())) {
    for (const auto& t : file.header().tensors) {
      const std::string hf = hf_name_from_gguf(t.name);
      if (hf.empty())
        throw CheckpointError(source() + ": unexpected tensor '" + t.name + "' (not part of a llama.cpp Llama model)");
      to_gguf[hf] = t.name;
    }
  }
  std::string source() const override { return "GGUF file '" + file.path() + "'"; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : to_gguf) out.push_back(kv.first);
    return out;
  }
  bool contains(const std::string& n) const override { return to_gguf.count(n) > 0; }
  std::vector<int64_t> shape(const std::string& n) const override { return file.header().find_tensor(to_gguf.at(n))->shape; }
  torch::Tensor get(const std::string& n, torch::ScalarType t, const torch::Device& d) const override {
    auto w = file.get(to_gguf.at(n), t, d);
    if (n.find(".self_attn.q_proj.") != std::string::npos) return unpermute_qk_rows(w, config.num_attention_heads);
    if (n.find(".self_attn.k_proj.") != std::string::npos) return unpermute_qk_rows(w, config.num_key_value_heads);
    return w;
  }
  std::shared_ptr<const nn::PackedWeight> packed(const std::string& n, const torch::Tensor& weight) const override {
    const gguf::TensorInfo* info = file.header().find_tensor(to_gguf.at(n));
    if (!nn::packable(info->type) || info->shape.size() != 2 || info->shape[1] % 32) return nullptr;
    const int64_t rows = info->shape[0];
    auto blocks = torch::from_blob(const_cast<uint8_t*>(file.data(*info)), {rows, (int64_t)info->bytes / rows},
                                   torch::kUInt8).clone();  // [O, row bytes]
    // Whole rows of blocks move with the rows they hold, so q/k rows are put back in HF order alike.
    if (n.find(".self_attn.q_proj.") != std::string::npos) blocks = unpermute_qk_rows(blocks, config.num_attention_heads);
    if (n.find(".self_attn.k_proj.") != std::string::npos) blocks = unpermute_qk_rows(blocks, config.num_key_value_heads);
    return std::make_shared<const nn::PackedWeight>(nn::pack_weight(info->type, blocks, weight));
  }
};

// Decoding on the CPU in float32 streams the source's quantized blocks where it has them.
void attach_packed_weights(LlamaForCausalLMImpl& model, const WeightSource& src) {
  for (const auto& item : model.named_modules("", false)) {
    auto* linear = item.value()->as<LoraLinearImpl>();
    if (!linear || !linear->weight.device().is_cpu() || linear->weight.scalar_type() != torch::kFloat32) continue;
    const std::string name =
        item.key() == "lm_head" && model.config.tie_word_embeddings ? "model.embed_tokens.weight" : item.key() + ".weight";
    if (src.contains(name)) linear->packed = src.packed(name, linear->weight);
  }
}

LlamaForCausalLM load_weights(LlamaConfig cfg, const WeightSource& src, std::optional<torch::ScalarType> dtype,
                              const torch::Device& device) {
  const torch::ScalarType target = dtype ? *dtype : (device.is_cpu() ? torch::kFloat32 : cfg.dtype());
  LlamaForCausalLM model{nullptr};
  {
    SkipInit no_init;  // weights are replaced below; no random init, untouched memory
    model = LlamaForCausalLM(cfg);
  }
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& [name, param] : checkpoint_tensors(*model, false)) {
    if (!src.contains(name))
      throw CheckpointError(src.source() + ": missing tensor '" + name + "' (the model's config describes a model that needs it)");
    const auto shape = src.shape(name);
    if (shape != param.sizes().vec())
      throw CheckpointError(src.source() + ": tensor '" + name + "' has shape " + c10::str(at::IntArrayRef(shape)) +
                            " but the model's config implies " + c10::str(param.sizes()));
    // Swap the storage: the uninitialised placeholder is released, the weight lives on `device`.
    // (set_data keeps the tensor object, so a tied lm_head, which is the same object, follows.)
    param.set_data(src.get(name, target, device));
    used.insert(name);
  }
  for (const auto& name : src.names()) {
    if (used.count(name)) continue;
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // derived, some checkpoints store it
    if (cfg.tie_word_embeddings && name == "lm_head.weight") continue;     // tied: the embedding is used
    throw CheckpointError(src.source() + ": unexpected tensor '" + name + "' (not part of a " +
                          std::to_string(cfg.num_hidden_layers) + "-layer Llama; wrong config?)");
  }
  for (auto& b : model->buffers()) b.set_data(b.to(device));
  for (auto& p : model->parameters())  // norms keep their init ones otherwise; all floating weights in `target`
    if (p.device() != device || p.scalar_type() != target) p.set_data(p.to(device, target));
  model->config.torch_dtype = dtype_name(target);
  attach_packed_weights(*model, src);
  model->eval();
  return model;
}

}  // namespace

LlamaForCausalLM load_llama(const std::string& model_path, std::optional<torch::ScalarType> dtype, const torch::Device& device) {
  const std::string path = resolve_model(model_path);
  if (gguf::is_gguf_file(path)) {
    GgufModel src(path);
    return load_weights(src.config, src, dtype, device);
  }
  if (path_exists(path) && !std::filesystem::is_directory(path))
    throw CheckpointError("model '" + path + "' is neither a GGUF file nor a Hugging Face model directory "
                          "(config.json + model.safetensors)");
  LlamaConfig cfg = load_llama_config(path + "/config.json");
  HfDirectory src(path);
  return load_weights(cfg, src, dtype, device);
}

int64_t drop_packed_weights(LlamaForCausalLMImpl& model) {
  int64_t n = 0;
  for (auto& m : model.modules(false))
    if (auto* linear = m->as<LoraLinearImpl>(); linear && linear->packed) {
      linear->packed.reset();
      ++n;
    }
  return n;
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

std::string model_identity(const std::string& model) {
  namespace fs = std::filesystem;
  const std::string path = resolve_model(model);
  std::string b;
  if (fs::is_regular_file(path)) {  // GGUF
    const auto size = fs::file_size(path);
    b = "gguf " + std::to_string(size) + "\n";
    std::ifstream in(path, std::ios::binary);
    std::string head(std::min<uintmax_t>(size, 1 << 20), '\0');
    in.read(head.data(), (std::streamsize)head.size());
    b += head;
  } else {
    if (path_exists(path + "/config.json")) b = read_file(path + "/config.json");
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".safetensors")
        files.push_back(e.path().filename().string() + " " + std::to_string(e.file_size()));
    std::sort(files.begin(), files.end());
    for (const auto& f : files) b += "\n" + f;
  }
  return sha256_hex(b);
}

}  // namespace sbtrec::llm
