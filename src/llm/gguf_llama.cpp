// Llama from GGUF metadata and tensor names (see gguf_llama.h).
#include "sbtrec/llm/gguf_llama.h"

#include <regex>

#include "sbtrec/common/error.h"

namespace sbtrec::llm {

LlamaConfig llama_config_from_gguf(const gguf::Header& h) {
  auto fail = [&](const std::string& what) -> void { throw CheckpointError("GGUF file '" + h.source + "': " + what); };
  const std::string arch = h.get_string("general.architecture");
  if (arch != "llama")
    fail("general.architecture is \"" + arch + "\"; only Llama models (\"llama\") are supported");
  if (auto t = h.find_string("llama.rope.scaling.type"); t && *t != "none")
    fail("llama.rope.scaling.type is \"" + *t + "\"; rope scaling is not supported, so this model would compute something else");
  if (h.find_tensor("rope_freqs.weight"))
    fail("tensor 'rope_freqs.weight' (Llama-3 rope frequency factors) is not supported");
  if (auto e = h.find_int("llama.expert_count"); e && *e > 0)
    fail("llama.expert_count is " + std::to_string(*e) + "; mixture-of-experts models are not supported");

  LlamaConfig c;
  c.num_hidden_layers = h.get_int("llama.block_count");
  c.hidden_size = h.get_int("llama.embedding_length");
  c.intermediate_size = h.get_int("llama.feed_forward_length");
  c.num_attention_heads = h.get_int("llama.attention.head_count");
  c.num_key_value_heads = h.find_int("llama.attention.head_count_kv").value_or(c.num_attention_heads);
  c.rms_norm_eps = h.get_float("llama.attention.layer_norm_rms_epsilon");
  c.rope_theta = h.find_float("llama.rope.freq_base").value_or(10000.0);
  c.max_position_embeddings = h.find_int("llama.context_length").value_or(4096);
  if (auto kl = h.find_int("llama.attention.key_length")) c.head_dim = *kl;
  if (c.num_attention_heads > 0 && c.head_dim == c.hidden_size / c.num_attention_heads) c.head_dim = 0;  // the default
  if (auto rd = h.find_int("llama.rope.dimension_count"); rd && *rd != c.dim_per_head())
    fail("llama.rope.dimension_count is " + std::to_string(*rd) + " but heads are " + std::to_string(c.dim_per_head()) +
         " wide; partial rotary embeddings are not supported");
  const gguf::TensorInfo* embd = h.find_tensor("token_embd.weight");
  if (!embd) fail("tensor 'token_embd.weight' is missing (every llama.cpp Llama has it)");
  if (auto v = h.find_int("llama.vocab_size")) c.vocab_size = *v;
  else if (const gguf::Value* toks = h.find("tokenizer.ggml.tokens")) c.vocab_size = (int64_t)toks->size();
  else c.vocab_size = embd->shape[0];
  c.tie_word_embeddings = h.find_tensor("output.weight") == nullptr;
  c.bos_token_id = h.find_int("tokenizer.ggml.bos_token_id").value_or(c.bos_token_id);
  if (auto eos = h.find_int("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {*eos};
  c.pad_token_id = h.find_int("tokenizer.ggml.padding_token_id").value_or(-1);
  // GGUF weights are quantized; where a dtype is chosen automatically off the CPU, use bf16.
  c.torch_dtype = "bfloat16";
  try {
    c.validate("GGUF file '" + h.source + "' (llama.* metadata)");
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
  return c;
}

std::string hf_name_from_gguf(const std::string& n) {
  if (n == "token_embd.weight") return "model.embed_tokens.weight";
  if (n == "output_norm.weight") return "model.norm.weight";
  if (n == "output.weight") return "lm_head.weight";
  static const std::regex blk(R"(blk\.([0-9]+)\.([a-z_]+)\.weight)");
  std::smatch m;
  if (!std::regex_match(n, m, blk)) return "";
  static const std::pair<const char*, const char*> parts[] = {
      {"attn_norm", "input_layernorm"},        {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},          {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},           {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  for (const auto& [g, hf] : parts)
    if (m[2] == g) return "model.layers." + m[1].str() + "." + hf + ".weight";
  return "";
}

torch::Tensor unpermute_qk_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0);
  TORCH_CHECK(rows % (2 * heads) == 0, "unpermute_qk_rows: ", rows, " rows do not split into ", heads, " heads of pairs");
  const int64_t half = rows / heads / 2;
  // [heads, half, 2, in] (llama.cpp: pairs adjacent) -> [heads, 2, half, in] (HF: halves) -> [rows, in]
  return w.reshape({heads, half, 2, -1}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

BpeVocabulary bpe_vocabulary_from_gguf(const gguf::Header& h) {
  const std::string model = h.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw CheckpointError("GGUF file '" + h.source + "': tokenizer.ggml.model is \"" + model +
                          "\"; sbtrec reads byte-level BPE (\"gpt2\") vocabularies from GGUF. For a SentencePiece "
                          "(Llama-2) vocabulary, use the Hugging Face directory's tokenizer.model");
  BpeVocabulary v;
  v.source = h.source;
  v.tokens = h.get_strings("tokenizer.ggml.tokens");
  v.merges = h.get_strings("tokenizer.ggml.merges");
  if (h.find("tokenizer.ggml.token_type"))
    for (int64_t t : h.get_ints("tokenizer.ggml.token_type")) v.token_types.push_back((int32_t)t);
  else
    v.token_types.assign(v.tokens.size(), 1);  // all normal: token_types given selects transformers' GGUF reading
  if (v.token_types.size() != v.tokens.size())
    throw CheckpointError("GGUF file '" + h.source + "': tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) +
                          " entries for " + std::to_string(v.tokens.size()) + " tokens");
  // transformers splits with ByteLevel's regex whatever tokenizer.ggml.pre says ("smollm" included:
  // its vocabulary has no multi-digit tokens, so splitting digits first changes nothing).
  v.pre_tokenizer = "gpt2";
  v.bos_id = h.find_int("tokenizer.ggml.bos_token_id").value_or(-1);
  v.eos_id = h.find_int("tokenizer.ggml.eos_token_id").value_or(-1);
  v.pad_id = h.find_int("tokenizer.ggml.padding_token_id").value_or(-1);
  v.unk_id = -1;  // transformers builds the BPE model without an unk token from a GGUF
  v.add_bos = h.find_bool("tokenizer.ggml.add_bos_token").value_or(false);
  v.add_eos = h.find_bool("tokenizer.ggml.add_eos_token").value_or(false);
  v.chat_template = h.find_string("tokenizer.chat_template").value_or("");
  return v;
}

}  // namespace sbtrec::llm
