// Llama models stored as GGUF (llama.cpp's format): the architecture from the `llama.*` metadata,
// llama.cpp's tensor names mapped to Hugging Face's, and the q/k row permutation that llama.cpp's
// converter applies undone, as transformers' GGUF loader does. load_llama (checkpoint.h) uses these
// for any path that is a GGUF file.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sbtrec/common/gguf_header.h"
#include "sbtrec/llm/bpe_tokenizer.h"
#include "sbtrec/llm/llama_config.h"

namespace sbtrec::llm {

// Reads general.architecture (must be "llama") and llama.{block_count, embedding_length,
// feed_forward_length, attention.head_count[_kv], attention.layer_norm_rms_epsilon, rope.freq_base,
// rope.dimension_count, context_length, vocab_size} plus the tokenizer's bos/eos/pad ids. Anything
// the implementation would compute differently (rope scaling, experts, partial rotary) is an error.
LlamaConfig llama_config_from_gguf(const gguf::Header& h);

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; "" for a name with no
// Hugging Face counterpart.
std::string hf_name_from_gguf(const std::string& gguf_name);

// llama.cpp stores q_proj/k_proj rows permuted so that rotary pairs are adjacent (GPT-J style):
// per head, rows [0, 2, 4, ..., 1, 3, 5, ...] become interleaved. This returns the Hugging Face
// (rotate-half) order. `w`: [heads * head_dim, in] with `heads` the query or key-value head count.
torch::Tensor unpermute_qk_rows(const torch::Tensor& w, int64_t heads);

// The byte-level BPE vocabulary of a GGUF file (tokenizer.ggml.model = "gpt2": tokens, merges, token
// types, bos/eos/pad ids, add_bos_token, pre-tokenizer, chat template), read as transformers reads it
// (AutoTokenizer.from_pretrained(dir, gguf_file=...)). Throws CheckpointError naming the file for
// another tokenizer model (SentencePiece "llama" vocabularies: use the Hugging Face directory's
// tokenizer.model) or missing metadata.
BpeVocabulary bpe_vocabulary_from_gguf(const gguf::Header& h);

}  // namespace sbtrec::llm
