// Llama as a LibTorch module tree whose names equal Hugging Face's (model.embed_tokens,
// model.layers.N.self_attn.q_proj, ...mlp.gate_proj, input_layernorm, post_attention_layernorm,
// model.norm, lm_head), so the state dict is the checkpoint's. RMSNorm, rotary embeddings in the
// rotate-half convention, grouped-query attention through at::scaled_dot_product_attention with
// causal + padding masks (left or right padding), SwiGLU MLP, an inputs_embeds path, fp32/bf16/fp16,
// optional activation checkpointing per layer, and LoRA in every projection (see lora.h).
// Legend: B batch, T new tokens, S = cached + new positions, D hidden, H heads, Hkv key/value heads,
// E head width, F intermediate, V vocabulary.
#pragma once
#include <torch/torch.h>

#include "sbtrec/llm/kv_cache.h"
#include "sbtrec/llm/llama_config.h"
#include "sbtrec/llm/lora.h"
#include "sbtrec/nn/linear_cross_entropy.h"

namespace sbtrec::llm {

// Token embedding table with a replaceable `weight` (torch::nn::Embedding cannot re-register it,
// which tying and added tokens need). ids [B, T] -> [B, T, D].
struct TokenEmbeddingImpl : torch::nn::Module {
  TokenEmbeddingImpl(int64_t vocab, int64_t d);
  torch::Tensor forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }
  void replace_weight(const torch::Tensor& w) {
    parameters_["weight"] = w;
    weight = w;
  }
  torch::Tensor weight;  // [V, D]
};
TORCH_MODULE(TokenEmbedding);

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t d, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., D] -> [..., D], statistics in float32
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// What every layer needs for one forward: rotary tables and the attention mask.
struct AttentionInputs {
  torch::Tensor cos, sin;  // [B, T, E] in the activation dtype
  torch::Tensor mask;      // [B, 1, T, S] bool (true = may attend), or undefined
  bool is_causal = false;  // use SDPA's own causal mask (no padding, nothing cached)
  // Analysis (ForwardInputs::attention_probe): each layer appends the attention weights of the last
  // query position, [B, H, S] float32.
  std::vector<torch::Tensor>* probe = nullptr;
};

struct LlamaAttentionImpl : torch::nn::Module {
  explicit LlamaAttentionImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in, KVCache* cache, int64_t layer);  // [B,T,D]
  int64_t heads, kv_heads, head_dim;
  // llm.gemm_dtype for the attention of many queries without gradient (a prompt's prefill): softmax(q k^T) v
  // on q, k, v in this dtype, the result back in theirs; the KV cache keeps theirs. nullopt = theirs.
  std::optional<torch::ScalarType> gemm_dtype;
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(LlamaAttention);

struct LlamaMLPImpl : torch::nn::Module {
  explicit LlamaMLPImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x)): [B, T, D]
  LoraLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

struct LlamaDecoderLayerImpl : torch::nn::Module {
  explicit LlamaDecoderLayerImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& in, KVCache* cache, int64_t layer);
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

struct ForwardInputs {
  torch::Tensor input_ids;       // [B, T] int64, or undefined when inputs_embeds is given
  torch::Tensor inputs_embeds;   // [B, T, D] (e.g. text embeddings with behavioural tokens written in)
  torch::Tensor attention_mask;  // [B, S] 1 = real token, 0 = padding (left or right); undefined = all real
  torch::Tensor position_ids;    // [B, T]; undefined = from attention_mask (cumsum - 1) or arange
  KVCache* cache = nullptr;      // incremental decoding
  int64_t logits_to_keep = 0;    // 0 = logits for every position, k = only the last k
  // [B, T, T] bool, no cache: query t may attend to key s where true (and s is real), instead of the
  // causal rule; with position_ids, several continuations packed after one prompt in a row (S-DPO's
  // shared prompt, llm/shared_prompt.h). Undefined = causal.
  torch::Tensor visibility;
  // Analysis: when set, receives per layer the attention weights of the last query position
  // ([B, H, S] float32, softmax over the keys; what the next token is predicted from). No effect on outputs.
  std::vector<torch::Tensor>* attention_probe = nullptr;
};

struct LlamaModelImpl : torch::nn::Module {
  explicit LlamaModelImpl(const LlamaConfig& c);
  torch::Tensor forward(const ForwardInputs& in);  // final hidden states [B, T, D]
  // No config copy here: LlamaForCausalLMImpl::config is the one (a second copy had to be kept in step
  // by hand, and load_llama's torch_dtype was not).
  TokenEmbedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  bool gradient_checkpointing = false;
  torch::Tensor inv_freq;  // [E / 2] float32, derived (not in the checkpoint)
};
TORCH_MODULE(LlamaModel);

struct LlamaForCausalLMImpl : torch::nn::Module {
  explicit LlamaForCausalLMImpl(const LlamaConfig& c);
  torch::Tensor forward(const ForwardInputs& in);  // logits [B, T or logits_to_keep, V], float32
  // Mean next-token cross entropy over labels != -100 (labels [B, T] aligned with the inputs; the
  // shift is done here, as in transformers).
  static torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);
  // The same loss computed from the final hidden states by nn::linear_cross_entropy: no [B, T, V]
  // logits are materialised and rows labelled -100 never reach lm_head (prompt tokens in SBT-Rec).
  // This is what training uses; forward + causal_lm_loss stays for callers that want the logits.
  torch::Tensor loss(const ForwardInputs& in, const torch::Tensor& labels, const nn::LinearCrossEntropyOptions& options = {});
  // labels [B, T] -> next-token targets [B*T] (the last position of each row is -100).
  static torch::Tensor shift_labels(const torch::Tensor& labels);

  // Appends `n` embedding rows (ids vocab_size .. vocab_size + n - 1) for extra special tokens, e.g.
  // behavioural-token slots; new rows are the mean of the existing ones. Untied lm_head grows too.
  void add_tokens(int64_t n);
  void set_gradient_checkpointing(bool on) { model->gradient_checkpointing = on; }
  // dtype of every linear layer's no-gradient GEMMs of many rows (LoraLinearImpl::gemm_dtype) and of
  // the prompt's attention (LlamaAttentionImpl::gemm_dtype); nullopt = the weights' own.
  void set_gemm_dtype(std::optional<torch::ScalarType> dtype);
  // Whether the products with the frozen weights (every projection and lm_head, also in training and in
  // loss()) go through oneDNN's matmul on the CPU (LoraLinearImpl::onednn_gemm; on by default).
  void set_onednn_gemm(bool on);
  // Points every frozen weight (the projections', the embedding's, lm_head's) at `from`'s tensors, which
  // must have the same shapes: a reference model that shares its base with the policy (S-DPO) and keeps
  // its own adapters, norms and added rows' copies only where they are its own parameters.
  void share_frozen_weights(LlamaForCausalLMImpl& from);
  // Adds LoRA adapters to the target projections of every layer and freezes everything else.
  // Adapters already present are removed first (their parameters are new objects afterwards).
  void add_lora(const LoraOptions& options);
  // Removes every adapter (merged ones are unmerged first); the base weights stay frozen.
  void remove_lora();
  std::vector<LoraLinear> lora_layers(bool only_with_adapter = true);
  void merge_lora();
  void unmerge_lora();
  // "trainable params: N || all params: M || trainable%: P" as PEFT prints it.
  std::string trainable_report();

  LlamaConfig config;
  LoraOptions lora;  // r == 0 when no adapter
  LlamaModel model{nullptr};
  LoraLinear lm_head{nullptr};  // never given an adapter; a LoraLinear only to share its no-init path

 private:
  void tie_lm_head();
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace sbtrec::llm
