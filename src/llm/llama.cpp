// Llama modules (see llama.h). Legend: B batch, T new tokens, S cached + new positions, D hidden,
// H heads, Hkv key/value heads, E head width, V vocabulary.
#include "sbtrec/llm/llama.h"

#include "sbtrec/nn/parameters.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cmath>
#include <set>
#include <sstream>

#include "sbtrec/common/error.h"
#include "sbtrec/nn/decode_attention.h"
#include "sbtrec/nn/rms_norm.h"
#include "sbtrec/nn/rotary.h"

namespace sbtrec::llm {
namespace {

// Re-runs a decoder layer in backward instead of keeping its activations (reentrant checkpointing,
// as torch.utils.checkpoint): parameter gradients accumulate during the recomputation. The RNG state
// of the activations' device is replayed so dropout masks match the first pass.
struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                                                torch::Tensor cos, torch::Tensor sin, torch::Tensor mask,
                                                bool is_causal, int64_t layer_address) {
    ctx->saved_data["layer"] = layer_address;
    ctx->saved_data["is_causal"] = is_causal;
    ctx->saved_data["rng"] = at::globalContext().defaultGenerator(x.device()).get_state();
    ctx->save_for_backward({x, cos, sin, mask});
    auto* layer = reinterpret_cast<LlamaDecoderLayerImpl*>(layer_address);
    torch::NoGradGuard no_grad;
    return {layer->forward(x, AttentionInputs{cos, sin, mask.numel() ? mask : torch::Tensor(), is_causal}, nullptr, 0)};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<LlamaDecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto gen = at::globalContext().defaultGenerator(saved[0].device());
    auto current = gen.get_state();
    gen.set_state(ctx->saved_data["rng"].toTensor());
    auto x = saved[0].detach().requires_grad_(true);
    torch::Tensor out;
    {
      torch::AutoGradMode enable(true);
      auto mask = saved[3].numel() ? saved[3] : torch::Tensor();
      out = layer->forward(x, AttentionInputs{saved[1], saved[2], mask, ctx->saved_data["is_causal"].toBool()}, nullptr, 0);
    }
    gen.set_state(current);
    torch::autograd::backward({out}, {grad[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

TokenEmbeddingImpl::TokenEmbeddingImpl(int64_t vocab, int64_t d) {
  weight = register_parameter("weight", torch::empty({vocab, d}), /*requires_grad=*/false);
  if (!skip_init()) torch::nn::init::normal_(weight, 0.0, 0.02);
}

RMSNormImpl::RMSNormImpl(int64_t d, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({d}), /*requires_grad=*/false);
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return nn::rms_norm(x, weight, eps); }

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.dim_per_head()) {
  q_proj = register_module("q_proj", LoraLinear(c.hidden_size, heads * head_dim));
  k_proj = register_module("k_proj", LoraLinear(c.hidden_size, kv_heads * head_dim));
  v_proj = register_module("v_proj", LoraLinear(c.hidden_size, kv_heads * head_dim));
  o_proj = register_module("o_proj", LoraLinear(heads * head_dim, c.hidden_size));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const AttentionInputs& in, KVCache* cache,
                                          int64_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = nn::apply_rotary(q_proj(x).view({B, T, heads, head_dim}), in.cos, in.sin).transpose(1, 2);     // [B, H, T, E]
  auto k = nn::apply_rotary(k_proj(x).view({B, T, kv_heads, head_dim}), in.cos, in.sin).transpose(1, 2);  // [B, Hkv, T, E]
  auto v = v_proj(x).view({B, T, kv_heads, head_dim}).transpose(1, 2);                                    // [B, Hkv, T, E]
  if (cache) std::tie(k, v) = cache->append(layer, k, v);               // [B, Hkv, S, E]
  const double scale = 1.0 / std::sqrt((double)head_dim);
  if (in.probe) {
    // softmax(q_last k^T * scale) over the visible keys, for analysis only.
    torch::NoGradGuard ng;
    auto kk = k.to(torch::kFloat32).repeat_interleave(heads / kv_heads, 1);                        // [B, H, S, E]
    auto w = torch::matmul(q.narrow(2, T - 1, 1).to(torch::kFloat32), kk.transpose(2, 3)) * scale;  // [B, H, 1, S]
    if (in.mask.defined()) w = w.masked_fill(in.mask.narrow(2, T - 1, 1).logical_not(), -INFINITY);
    in.probe->push_back(torch::softmax(w, -1).squeeze(2));                                        // [B, H, S]
  }
  torch::Tensor o;  // [B, H, T, E]
  if (!in.is_causal && nn::decode_attention_applies(q, k, v, in.mask)) {
    o = nn::decode_attention(q, k, v, in.mask, scale);  // one new token per sequence (KV-cache decoding)
  } else {
    std::optional<torch::Tensor> mask;
    if (in.mask.defined()) mask = in.mask;
    // A prompt's attention without gradient in llm.gemm_dtype (.to of the same dtype is a no-op).
    const auto dtype = q.scalar_type();
    const auto math = gemm_dtype && T > 1 && !torch::GradMode::is_enabled() ? *gemm_dtype : dtype;
    o = at::scaled_dot_product_attention(q.to(math), k.to(math), v.to(math), mask, 0.0, in.is_causal, scale,
                                         /*enable_gqa=*/heads != kv_heads).to(dtype);
  }
  return o_proj(o.transpose(1, 2).reshape({B, T, heads * head_dim}));         // [B, T, D]
}

LlamaMLPImpl::LlamaMLPImpl(const LlamaConfig& c) {
  gate_proj = register_module("gate_proj", LoraLinear(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", LoraLinear(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", LoraLinear(c.intermediate_size, c.hidden_size));
}

torch::Tensor LlamaMLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));  // [B, T, F] -> [B, T, D]
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c) {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const AttentionInputs& in, KVCache* cache,
                                             int64_t layer) {
  auto h = x + self_attn(input_layernorm(x), in, cache, layer);  // [B, T, D]
  return h + mlp(post_attention_layernorm(h));                    // [B, T, D]
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c) {
  embed_tokens = register_module("embed_tokens", TokenEmbedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaDecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  const int64_t E = c.dim_per_head();
  // inv_freq = 1 / theta^(2i / E), computed in float32 as transformers does.
  inv_freq = 1.0 / torch::pow(torch::scalar_tensor(c.rope_theta, torch::kFloat32),
                              torch::arange(0, E, 2, torch::kInt64).to(torch::kFloat32) / (double)E);  // [E / 2]
}

torch::Tensor LlamaModelImpl::forward(const ForwardInputs& in) {
  TORCH_CHECK(in.input_ids.defined() != in.inputs_embeds.defined(), "pass exactly one of input_ids and inputs_embeds");
  const auto weight_dtype = embed_tokens->weight.scalar_type();
  auto x = in.input_ids.defined() ? embed_tokens(in.input_ids) : in.inputs_embeds.to(weight_dtype);  // [B, T, D]
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t past = in.cache ? in.cache->length() : 0, S = past + T;
  const auto dev = x.device();
  auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(dev);
  torch::Tensor am = in.attention_mask;
  if (am.defined()) {
    TORCH_CHECK(am.dim() == 2 && am.size(0) == B && am.size(1) == S, "attention_mask must be [B, cached + new] = [", B,
                ", ", S, "], got ", am.sizes());
    // Without padding the mask is dropped so the fast paths below apply (SDPA's causal kernel, the
    // decode kernel). Only a host mask is inspected: reading a device mask back would stall the host
    // once per forward, so a device mask is used as given (a mask of ones gives the same values).
    // Generation passes no mask at all when its prompts are unpadded.
    if (am.device().is_cpu() && am.all().item<bool>()) am = torch::Tensor();
    else am = am.to(dev);
  }
  // Positions: explicit, else from the mask (as transformers' generate does), else consecutive.
  torch::Tensor pos = in.position_ids;
  if (!pos.defined()) {
    if (am.defined()) {
      pos = am.to(torch::kInt64).cumsum(-1) - 1;
      pos.masked_fill_(am.eq(0), 1);
      pos = pos.narrow(1, past, T);
    } else {
      pos = torch::arange(past, S, long_opts).unsqueeze(0).expand({B, T});
    }
  }
  auto freqs = pos.to(dev).to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(dev).view({1, 1, -1});  // [B, T, E/2]
  auto emb = torch::cat({freqs, freqs}, -1);                                                          // [B, T, E]
  AttentionInputs ai{emb.cos().to(x.scalar_type()), emb.sin().to(x.scalar_type()), {}, false, in.attention_probe};
  if (in.visibility.defined()) {
    TORCH_CHECK(!in.cache && in.visibility.dim() == 3 && in.visibility.size(0) == B && in.visibility.size(1) == T &&
                    in.visibility.size(2) == T,
                "visibility must be [B, T, T] = [", B, ", ", T, ", ", T, "] without a cache, got ", in.visibility.sizes());
    TORCH_CHECK(in.position_ids.defined(), "visibility needs explicit position_ids");
    auto allowed = in.visibility.to(dev, torch::kBool).unsqueeze(1);  // [B, 1, T, T]
    if (am.defined()) {
      allowed = allowed.logical_and(am.view({B, 1, 1, T}).ne(0));
      auto self = torch::eye(T, torch::TensorOptions().dtype(torch::kBool).device(dev)).view({1, 1, T, T});
      allowed = allowed.logical_or(self);  // a padding query sees itself (its output is unused)
    }
    ai.mask = allowed;
  } else if (!am.defined() && past == 0 && T > 1) {
    ai.is_causal = true;
  } else if (am.defined() || T > 1) {
    // Key s is visible to query t (absolute position past + t) when s <= past + t and s is real.
    auto q_abs = torch::arange(past, S, long_opts).view({1, 1, T, 1});
    auto k_abs = torch::arange(0, S, long_opts).view({1, 1, 1, S});
    auto allowed = k_abs.le(q_abs);  // [1, 1, T, S]
    if (am.defined()) {
      allowed = allowed.logical_and(am.view({B, 1, 1, S}).ne(0));
      // A padding query sees nothing; let it see itself so no row is empty (its output is unused).
      allowed = allowed.logical_or(k_abs.eq(q_abs));
    }
    ai.mask = allowed.expand({B, 1, T, S});  // [B, 1, T, S]
  }
  const bool checkpointing = gradient_checkpointing && is_training() && !in.cache && torch::GradMode::is_enabled();
  // A recomputed layer only back-propagates when its input requires grad; with frozen embeddings
  // (LoRA) it would not, so make it (as PEFT's enable_input_require_grads does).
  if (checkpointing && !x.requires_grad()) x = x.detach().requires_grad_(true);
  for (int64_t i = 0; i < (int64_t)layers->size(); ++i) {
    auto* layer = layers[i]->as<LlamaDecoderLayer>();
    if (checkpointing) {
      // autograd::Function arguments must be defined tensors: an empty one stands for "no mask".
      auto mask = ai.mask.defined() ? ai.mask : torch::empty({0}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
      x = CheckpointedLayer::apply(x, ai.cos, ai.sin, mask, ai.is_causal, reinterpret_cast<int64_t>(layer))[0];
    } else {
      x = layer->forward(x, ai, in.cache, i);
    }
  }
  if (in.cache) in.cache->advance(T);
  return norm(x);  // [B, T, D]
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& c) : config(c) {
  lora.r = 0;
  model = register_module("model", LlamaModel(c));
  lm_head = register_module("lm_head", LoraLinear(c.hidden_size, c.vocab_size));
  if (c.tie_word_embeddings) tie_lm_head();
}

void LlamaForCausalLMImpl::tie_lm_head() {
  lm_head->replace_weight(model->embed_tokens->weight);
}

torch::Tensor LlamaForCausalLMImpl::forward(const ForwardInputs& in) {
  auto h = model(in);  // [B, T, D]
  if (in.logits_to_keep > 0 && in.logits_to_keep < h.size(1))
    h = h.narrow(1, h.size(1) - in.logits_to_keep, in.logits_to_keep);
  return lm_head(h).to(torch::kFloat32);  // [B, T', V]
}

torch::Tensor LlamaForCausalLMImpl::shift_labels(const torch::Tensor& labels) {
  // The last position gets label -100: nothing follows it.
  auto ignore = torch::full({labels.size(0), 1}, -100, labels.options());
  return torch::cat({labels.narrow(1, 1, labels.size(1) - 1), ignore}, 1).reshape({-1});  // [B*T]
}

torch::Tensor LlamaForCausalLMImpl::causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t V = logits.size(-1);
  // Shift the labels, not the logits: slicing [B, T, V] logits would make autograd allocate, zero and
  // copy a full-size gradient.
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat32).reshape({-1, V}),
                                              shift_labels(labels).to(logits.device()),
                                              torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

torch::Tensor LlamaForCausalLMImpl::loss(const ForwardInputs& in, const torch::Tensor& labels,
                                         const nn::LinearCrossEntropyOptions& options) {
  TORCH_CHECK(!lm_head->has_lora(), "LlamaForCausalLM::loss: lm_head carries no adapter here");
  auto h = model(in);  // [B, T, D]
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == h.size(0) && labels.size(1) == h.size(1),
              "labels must be [B, T] = [", h.size(0), ", ", h.size(1), "], got ", labels.sizes());
  auto o = options;
  o.onednn = lm_head->onednn_gemm;
  return nn::linear_cross_entropy(h.reshape({-1, h.size(2)}), lm_head->weight, shift_labels(labels).to(h.device()),
                                  o);  // scalar
}

void LlamaForCausalLMImpl::add_tokens(int64_t n) {
  if (n <= 0) return;
  torch::NoGradGuard no_grad;
  auto grow = [&](const torch::Tensor& w) {
    auto rows = w.mean(0, true).expand({n, w.size(1)});  // new rows start at the mean embedding
    return torch::cat({w, rows}, 0);
  };
  // The old rows keep their blocks for decoding (when the blocks still mirror them).
  const auto packed = lm_head->packed && lm_head->packed->mirrors(lm_head->weight) ? lm_head->packed : nullptr;
  model->embed_tokens->replace_weight(grow(model->embed_tokens->weight));
  if (config.tie_word_embeddings) {
    tie_lm_head();
  } else {
    lm_head->replace_weight(grow(lm_head->weight));
  }
  if (packed) lm_head->packed = std::make_shared<const nn::PackedWeight>(packed->grown_into(lm_head->weight));
  config.vocab_size += n;
}

void LlamaForCausalLMImpl::set_gemm_dtype(std::optional<torch::ScalarType> dtype) {
  for (auto& lin : lora_layers(/*only_with_adapter=*/false)) lin->gemm_dtype = dtype;
  for (auto& layer : *model->layers) layer->as<LlamaDecoderLayer>()->self_attn->gemm_dtype = dtype;
  lm_head->gemm_dtype = dtype;
}

void LlamaForCausalLMImpl::share_frozen_weights(LlamaForCausalLMImpl& from) {
  auto mine = lora_layers(/*only_with_adapter=*/false), theirs = from.lora_layers(/*only_with_adapter=*/false);
  TORCH_CHECK(mine.size() == theirs.size(), "share_frozen_weights: ", mine.size(), " projections here, ", theirs.size(), " there");
  for (size_t i = 0; i < mine.size(); ++i) {
    TORCH_CHECK(mine[i]->weight.sizes() == theirs[i]->weight.sizes() && !mine[i]->merged() && !theirs[i]->merged(),
                "share_frozen_weights: projection ", i, " differs in shape (or has a merged adapter)");
    mine[i]->replace_weight(theirs[i]->weight);
    mine[i]->packed = theirs[i]->packed;
  }
  TORCH_CHECK(model->embed_tokens->weight.sizes() == from.model->embed_tokens->weight.sizes(),
              "share_frozen_weights: the embeddings differ in shape");
  model->embed_tokens->replace_weight(from.model->embed_tokens->weight);
  if (config.tie_word_embeddings) {
    tie_lm_head();
  } else {
    lm_head->replace_weight(from.lm_head->weight);
  }
  lm_head->packed = from.lm_head->packed;
}

void LlamaForCausalLMImpl::set_onednn_gemm(bool on) {
  for (auto& lin : lora_layers(/*only_with_adapter=*/false)) lin->onednn_gemm = on;
  lm_head->onednn_gemm = on;
}

std::vector<LoraLinear> LlamaForCausalLMImpl::lora_layers(bool only_with_adapter) {
  std::vector<LoraLinear> out;
  for (auto& m : model->modules(false)) {  // model only: lm_head never carries an adapter
    if (auto lin = std::dynamic_pointer_cast<LoraLinearImpl>(m))
      if (!only_with_adapter || lin->has_lora()) out.emplace_back(lin);
  }
  return out;
}

void LlamaForCausalLMImpl::add_lora(const LoraOptions& options) {
  if (options.r <= 0) throw ConfigError("lora.r must be positive");
  static const std::set<std::string> known = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  for (const auto& t : options.target_modules)
    if (!known.count(t)) throw ConfigError("lora target module '" + t + "' is not one of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj");
  remove_lora();
  for (auto& p : parameters()) p.set_requires_grad(false);
  for (auto& item : model->named_modules()) {
    auto lin = std::dynamic_pointer_cast<LoraLinearImpl>(item.value());
    if (!lin) continue;
    const std::string& name = item.key();
    const std::string leaf = name.substr(name.rfind('.') + 1);
    if (std::find(options.target_modules.begin(), options.target_modules.end(), leaf) != options.target_modules.end())
      lin->enable_lora(options);
  }
  lora = options;
}

void LlamaForCausalLMImpl::remove_lora() {
  for (auto& l : lora_layers()) l->disable_lora();
  lora = LoraOptions{};
  lora.r = 0;
}

void LlamaForCausalLMImpl::merge_lora() {
  for (auto& l : lora_layers()) l->merge();
}
void LlamaForCausalLMImpl::unmerge_lora() {
  for (auto& l : lora_layers()) l->unmerge();
}

std::string LlamaForCausalLMImpl::trainable_report() { return nn::trainable_report(*this); }

}  // namespace sbtrec::llm
