// Encoder base, factory and checkpoint directory I/O (see encoder.h).
#include "sbtrec/encoder/encoder.h"

#include <spdlog/spdlog.h>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/encoder/caser.h"
#include "sbtrec/encoder/gru4rec.h"
#include "sbtrec/encoder/sasrec.h"

namespace sbtrec::encoder {

EncoderImpl::EncoderImpl(int64_t num_items, int64_t hidden_size, int64_t representation_size)
    : num_items_(num_items), hidden_size_(hidden_size) {
  item_embeddings = register_module("item_embeddings", torch::nn::Embedding(num_items + 1, hidden_size));
  s_fc = register_module("s_fc", torch::nn::Linear(representation_size, num_items));
}

torch::Tensor EncoderImpl::all_logits(const torch::Tensor& z) { return s_fc(z); }  // [B, N]

torch::Tensor EncoderImpl::item_logits(const torch::Tensor& z, const torch::Tensor& items) {
  auto w = s_fc->weight.index_select(0, items.reshape(-1)).view({items.size(0), items.size(1), -1});  // [B, C, Z]
  auto b = s_fc->bias.index_select(0, items.reshape(-1)).view_as(items);                               // [B, C]
  return torch::bmm(w, z.unsqueeze(2)).squeeze(2) + b;                                                // [B, C]
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& seq, const torch::Tensor& lengths) {
  return all_logits(sequence_representation(seq, lengths));
}

torch::Tensor EncoderImpl::padding_mask(const torch::Tensor& seq) const {
  return seq.ne(num_items_).unsqueeze(-1).to(torch::kFloat32);  // [B, T, 1]
}

Encoder make_encoder(const EncoderOptions& o, int64_t num_items) {
  switch (o.type) {
    case EncoderType::kSASRec: return SASRec(o, num_items).ptr();
    case EncoderType::kGRU4Rec: return GRU4Rec(o, num_items).ptr();
    case EncoderType::kCaser: return Caser(o, num_items).ptr();
  }
  throw ConfigError("encoder.type: not an encoder (sasrec, gru4rec, caser)");
}

EncoderOptions parse_encoder_section(const std::string& yaml_text, const std::string& source) {
  EncoderOptions o;
  if (config::read_yaml_section(yaml_text, source, "encoder", config::visiting(o))) return o;
  // Checkpoints written before sbtrec 0.2 call the section `model:`.
  if (config::read_yaml_section(yaml_text, source, "model", config::visiting(o))) {
    spdlog::info("{}: reading the encoder from its 'model:' section (the name before sbtrec 0.2; now 'encoder:')", source);
    return o;
  }
  throw CheckpointError(source + ": no 'encoder:' section (a checkpoint's config.yaml must describe its encoder)");
}

void save_encoder(const std::string& dir, EncoderImpl& encoder, const std::string& config_yaml) {
  make_dirs(dir);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : encoder.named_parameters()) tensors[p.key()] = p.value();
  for (const auto& b : encoder.named_buffers()) tensors[b.key()] = b.value();
  // The resolved config travels inside the weights file too, so a copied model.safetensors alone still
  // says how it was trained.
  safetensors::save(dir + "/model.safetensors", tensors,
                    {{"format", "sbtrec-encoder"}, {"version", "1"}, {"config", config_yaml}});
  atomic_write_string(dir + "/config.yaml", config_yaml);
}

Encoder load_encoder(const std::string& dir, int64_t num_items, EncoderOptions* options_out) {
  const std::string cfg_path = dir + "/config.yaml";
  std::string text;
  try {
    text = read_file(cfg_path, "A checkpoint directory holds model.safetensors and config.yaml (made by sbtrec-train "
                               "or scripts/import_llara_checkpoint.py)");
  } catch (const IoError& e) {
    throw CheckpointError(e.what());
  }
  EncoderOptions options;
  try {
    options = parse_encoder_section(text, cfg_path);
  } catch (const ConfigError& e) {
    throw CheckpointError(std::string(e.what()) + " (in the checkpoint's config.yaml)");
  }
  Encoder enc = make_encoder(options, num_items);
  const std::string weights = dir + "/model.safetensors";
  std::map<std::string, torch::Tensor> tensors;
  try {
    tensors = safetensors::load(weights, torch::kFloat32);
  } catch (const IoError& e) {
    throw CheckpointError(e.what());
  }
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto copy_into = [&](const std::string& name, torch::Tensor& dst) {
    auto it = tensors.find(name);
    if (it == tensors.end())
      throw CheckpointError(weights + ": missing tensor '" + name + "' for a " + std::string(encoder_name(options.type)) + " model (wrong encoder.type in " +
                            cfg_path + "?)");
    if (it->second.sizes() != dst.sizes())
      throw CheckpointError(weights + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + " but the model needs " +
                            c10::str(dst.sizes()) + " (num_items=" + std::to_string(num_items) +
                            " from the dataset; the checkpoint may belong to another dataset)");
    dst.copy_(it->second);
    used.insert(name);
  };
  for (auto& p : enc->named_parameters()) copy_into(p.key(), p.value());
  for (auto& b : enc->named_buffers()) copy_into(b.key(), b.value());
  for (const auto& [name, t] : tensors)
    if (!used.count(name)) throw CheckpointError(weights + ": unexpected tensor '" + name + "' for a " + std::string(encoder_name(options.type)) + " model");
  if (options_out) *options_out = options;
  return enc;
}

}  // namespace sbtrec::encoder
