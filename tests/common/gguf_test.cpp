// GGUF reader: every metadata type, tensor data of the plain types and Q8_0, every kind of corrupt
// header rejected with a CheckpointError (every truncation of a valid file included), and a tiny
// Llama read from GGUF (llama.cpp names, permuted q/k rows) equal to the same model from a Hugging
// Face directory.
#include <c10/util/Half.h>

#include "../test_util.h"
#include "gguf_builder.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/gguf_llama.h"

using namespace sbtrec;
using test::GgufBuilder;

namespace {

gguf::Header parse(const std::string& bytes) {
  return gguf::parse_header((const uint8_t*)bytes.data(), bytes.size(), bytes.size(), "test.gguf");
}

std::string parse_error(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

GgufBuilder small_file() {
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.block_count", 2);
  b.kv_f32("llama.rope.freq_base", 100000.f);
  b.kv_bool("tokenizer.ggml.add_bos_token", false);
  b.kv_strs("tokenizer.ggml.tokens", {"a", "b", "\xc4\xa0the"});
  b.kv_i32s("tokenizer.ggml.token_type", {1, 3, 1});
  b.tensor("w", {4, 2}, 0, GgufBuilder::bytes_of(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  b.tensor("v", {3}, 0, GgufBuilder::bytes_of(std::vector<float>{-1, 0, 1}));
  return b;
}

}  // namespace

TEST(Gguf, ParsesMetadataOfEveryTypeAndTensorInfos) {
  GgufBuilder b = small_file();
  std::string v;
  GgufBuilder::put<int8_t>(v, -5);
  b.kv_raw("i8", 1, v);
  v.clear();
  GgufBuilder::put<uint16_t>(v, 65000);
  b.kv_raw("u16", 2, v);
  v.clear();
  GgufBuilder::put<int16_t>(v, -300);
  b.kv_raw("i16", 3, v);
  v.clear();
  GgufBuilder::put<int64_t>(v, -(1ll << 40));
  b.kv_raw("i64", 11, v);
  v.clear();
  GgufBuilder::put<double>(v, 0.125);
  b.kv_raw("f64", 12, v);
  b.kv_u64("u64", 1ull << 50);
  // An array of two arrays of uint8.
  v.clear();
  GgufBuilder::put<uint32_t>(v, 9);
  GgufBuilder::put<uint64_t>(v, 2);
  for (int k = 0; k < 2; ++k) {
    GgufBuilder::put<uint32_t>(v, 0);
    GgufBuilder::put<uint64_t>(v, 2);
    GgufBuilder::put<uint8_t>(v, 10 + k);
    GgufBuilder::put<uint8_t>(v, 20 + k);
  }
  b.kv_raw("nested", 9, v);
  const auto h = parse(b.build());
  EXPECT_EQ(h.version, 3u);
  EXPECT_EQ(h.get_string("general.architecture"), "llama");
  EXPECT_EQ(h.get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(h.get_float("llama.rope.freq_base"), 100000.f);
  EXPECT_FALSE(h.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(h.get_strings("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "\xc4\xa0the"}));
  EXPECT_EQ(h.get_ints("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 3, 1}));
  EXPECT_EQ(h.get_int("i8"), -5);
  EXPECT_EQ(h.get_int("u16"), 65000);
  EXPECT_EQ(h.get_int("i16"), -300);
  EXPECT_EQ(h.get_int("i64"), -(1ll << 40));
  EXPECT_EQ(h.get_int("u64"), 1ll << 50);
  EXPECT_DOUBLE_EQ(h.get_float("f64"), 0.125);
  ASSERT_EQ(h.find("nested")->items.size(), 2u);
  EXPECT_EQ(h.find("nested")->items[1].integers, (std::vector<int64_t>{11, 21}));
  EXPECT_FALSE(h.find_int("absent").has_value());
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{2, 4}));  // ne reversed
  EXPECT_EQ(h.tensors[1].offset, 32u);                          // aligned after w's 32 bytes
  EXPECT_EQ(h.data_start % 32, 0u);
  // Typed access names the key and what it found.
  try {
    h.get_int("general.architecture");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("'general.architecture' must be an integer, found string"), std::string::npos) << e.what();
  }
  try {
    h.get_int("llama.context_length");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("test.gguf': metadata 'llama.context_length' is missing"), std::string::npos) << e.what();
  }
}

TEST(Gguf, VersionTwoAndCustomAlignment) {
  GgufBuilder b = small_file();
  b.version = 2;
  b.alignment = 64;
  b.kv_u32("general.alignment", 64);
  const auto h = parse(b.build());
  EXPECT_EQ(h.alignment, 64u);
  EXPECT_EQ(h.tensors[1].offset, 64u);
  EXPECT_EQ(h.data_start % 64, 0u);
}

TEST(Gguf, EveryTruncationIsAnErrorNeverACrash) {
  const std::string full = small_file().build();
  ASSERT_NO_THROW(parse(full));
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string cut = full.substr(0, n);
    EXPECT_THROW(gguf::parse_header((const uint8_t*)cut.data(), cut.size(), cut.size(), "cut.gguf"), CheckpointError) << n;
  }
}

TEST(Gguf, CorruptHeadersGiveClearErrors) {
  auto expect = [](const GgufBuilder& b, const std::string& needle) {
    const std::string msg = parse_error(b.build());
    EXPECT_NE(msg.find(needle), std::string::npos) << "wanted '" << needle << "', got: " << msg;
    EXPECT_NE(msg.find("test.gguf"), std::string::npos) << msg;
  };
  GgufBuilder b = small_file();
  b.magic = 0x12345678;
  expect(b, "bad magic");
  b = small_file();
  b.version = 1;
  expect(b, "version 1 is not supported");
  b.version = 4;
  expect(b, "unknown GGUF version 4");
  b.version = 0x03000000;
  expect(b, "big-endian");
  b = small_file();
  b.kv_u32("llama.block_count", 3);
  expect(b, "'llama.block_count' appears twice");
  b = small_file();
  b.kv_raw("weird", 13, "");
  expect(b, "unknown value type 13");
  b = small_file();
  b.kv_raw("flag", 7, std::string(1, '\x02'));
  expect(b, "neither 0 nor 1");
  b = small_file();
  b.kv_u32("general.alignment", 24);
  expect(b, "not a power of two");
  b = small_file();
  b.tensor("w", {2}, 0, std::string(8, '\0'));
  expect(b, "tensor 'w': appears twice");
  b = small_file();
  b.tensor("q", {31}, 8, std::string(34, '\0'));
  expect(b, "not a whole number of Q8_0 blocks");
  b = small_file();
  b.tensor("u", {4}, 99, std::string(16, '\0'));
  expect(b, "unknown tensor type 99");
  b = small_file();
  b.tensor("z", {4, 0}, 0, "");
  expect(b, "is empty or too large");
  b = small_file();
  b.tensor("d", {1, 1, 1, 1, 1}, 0, "");
  expect(b, "5 dimensions");
  b = small_file();
  b.tensor("far", {4}, 0, "", 1 << 20);
  expect(b, "tensor 'far' needs bytes [1048576, 1048592)");
  b = small_file();
  b.tensor("overlap", {4}, 0, "", 0);
  expect(b, "overlap in the data section");
  b = small_file();
  b.tensor("odd", {4}, 0, "", 8);
  expect(b, "not a multiple of the alignment");

  // Counts and lengths larger than the file could hold are caught before allocating.
  std::string bytes = small_file().build();
  std::string absurd = bytes;
  const uint64_t huge = 1ull << 60;
  std::memcpy(&absurd[8], &huge, 8);  // tensor count
  EXPECT_NE(parse_error(absurd).find("tensor count 1152921504606846976 is absurd"), std::string::npos) << parse_error(absurd);
  absurd = bytes;
  std::memcpy(&absurd[16], &huge, 8);  // metadata count
  EXPECT_NE(parse_error(absurd).find("metadata count"), std::string::npos);
  absurd = bytes;
  std::memcpy(&absurd[24], &huge, 8);  // length of the first key
  EXPECT_NE(parse_error(absurd).find("claims 1152921504606846976 bytes"), std::string::npos) << parse_error(absurd);
}

TEST(Gguf, FileReadsPlainAndQ8Tensors) {
  test::TempDir dir;
  GgufBuilder b;
  b.tensor("f32", {3, 2}, 0, GgufBuilder::bytes_of(std::vector<float>{1, 2, 3, 4, 5, 6}));
  std::vector<uint16_t> halves;
  for (float f : {0.5f, -2.f, 1024.f, 0.f}) halves.push_back(c10::Half(f).x);
  b.tensor("f16", {4}, 1, GgufBuilder::bytes_of(halves));
  std::vector<uint16_t> bf;
  for (float f : {1.5f, -3.f}) bf.push_back(c10::BFloat16(f).x);
  b.tensor("bf16", {2}, 30, GgufBuilder::bytes_of(bf));
  std::string q8;
  GgufBuilder::put<uint16_t>(q8, c10::Half(0.5f).x);
  for (int j = 0; j < 32; ++j) GgufBuilder::put<int8_t>(q8, (int8_t)(j - 16));
  b.tensor("q8", {32}, 8, q8);
  b.tensor("q2k", {256}, 10, std::string(84, '\0'));
  test::write_text(dir / "t.gguf", b.build());
  EXPECT_TRUE(gguf::is_gguf_file(dir / "t.gguf"));
  gguf::File f(dir / "t.gguf");
  EXPECT_TRUE(torch::equal(f.get("f32"), torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(f.get("f16"), torch::tensor({0.5f, -2.f, 1024.f, 0.f})));
  EXPECT_TRUE(torch::equal(f.get("bf16"), torch::tensor({1.5f, -3.f})));
  EXPECT_EQ(f.get("f16", torch::kBFloat16).scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(f.get("q8"), torch::arange(-16, 16, torch::kFloat32) * 0.5f));
  try {
    f.get("q2k");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'q2k' is of type Q2_K, which sbtrec cannot dequantize"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get("absent"), CheckpointError);
  test::write_text(dir / "not.gguf", "GGML");
  EXPECT_FALSE(gguf::is_gguf_file(dir / "not.gguf"));
  EXPECT_FALSE(gguf::is_gguf_file(dir.path.string()));
}

TEST(GgufLlama, NamesAndPermutation) {
  EXPECT_EQ(llm::hf_name_from_gguf("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(llm::hf_name_from_gguf("blk.12.attn_output.weight"), "model.layers.12.self_attn.o_proj.weight");
  EXPECT_EQ(llm::hf_name_from_gguf("blk.0.ffn_norm.weight"), "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(llm::hf_name_from_gguf("output.weight"), "lm_head.weight");
  EXPECT_EQ(llm::hf_name_from_gguf("blk.0.attn_qkv.weight"), "");
  EXPECT_EQ(llm::hf_name_from_gguf("rope_freqs.weight"), "");
  // One head of width 4: HF rows [r0 r1 | r2 r3] (halves) are stored by llama.cpp as [r0 r2 r1 r3].
  auto stored = torch::tensor({0.f, 2.f, 1.f, 3.f}).reshape({4, 1});
  EXPECT_TRUE(torch::equal(llm::unpermute_qk_rows(stored, 1), torch::tensor({0.f, 1.f, 2.f, 3.f}).reshape({4, 1})));
}

namespace {

// llama.cpp's converter permutation (the inverse of unpermute_qk_rows).
torch::Tensor permute_qk_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t half = w.size(0) / heads / 2;
  return w.reshape({heads, 2, half, -1}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

// A GGUF file holding `model` as llama.cpp would write it (float32 tensors).
std::string gguf_of(llm::LlamaForCausalLMImpl& model) {
  const auto& c = model.config;
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.block_count", (uint32_t)c.num_hidden_layers);
  b.kv_u32("llama.embedding_length", (uint32_t)c.hidden_size);
  b.kv_u32("llama.feed_forward_length", (uint32_t)c.intermediate_size);
  b.kv_u32("llama.attention.head_count", (uint32_t)c.num_attention_heads);
  b.kv_u32("llama.attention.head_count_kv", (uint32_t)c.num_key_value_heads);
  b.kv_f32("llama.attention.layer_norm_rms_epsilon", (float)c.rms_norm_eps);
  b.kv_f32("llama.rope.freq_base", (float)c.rope_theta);
  b.kv_u32("llama.rope.dimension_count", (uint32_t)c.dim_per_head());
  b.kv_u32("llama.context_length", (uint32_t)c.max_position_embeddings);
  b.kv_u32("llama.vocab_size", (uint32_t)c.vocab_size);
  std::map<std::string, std::string> to_gguf = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                {"model.norm.weight", "output_norm.weight"},
                                                {"lm_head.weight", "output.weight"}};
  const std::pair<const char*, const char*> parts[] = {
      {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"}, {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},   {"self_attn.v_proj", "attn_v"},           {"self_attn.o_proj", "attn_output"},
      {"mlp.gate_proj", "ffn_gate"},    {"mlp.up_proj", "ffn_up"},                {"mlp.down_proj", "ffn_down"}};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& [hf, g] : parts)
      to_gguf["model.layers." + std::to_string(l) + "." + hf + ".weight"] = "blk." + std::to_string(l) + "." + g + ".weight";
  for (const auto& p : model.named_parameters()) {
    auto w = p.value().detach().to(torch::kFloat32).contiguous();
    if (p.key().find("q_proj") != std::string::npos) w = permute_qk_rows(w, c.num_attention_heads);
    if (p.key().find("k_proj") != std::string::npos) w = permute_qk_rows(w, c.num_key_value_heads);
    std::vector<uint64_t> ne(w.sizes().rbegin(), w.sizes().rend());
    b.tensor(to_gguf.at(p.key()), ne, 0, std::string((const char*)w.data_ptr(), w.numel() * 4));
  }
  return b.build();
}

}  // namespace

TEST(GgufLlama, TinyModelFromGgufEqualsTheHuggingFaceDirectory) {
  torch::manual_seed(3);
  auto cfg = llm::llama_tiny();
  llm::LlamaForCausalLM model(cfg);
  test::TempDir dir;
  llm::save_llama(dir / "hf", *model);
  test::write_text(dir / "tiny.gguf", gguf_of(*model));
  auto from_hf = llm::load_llama(dir / "hf");
  auto from_gguf = llm::load_llama(dir / "tiny.gguf");
  EXPECT_EQ(from_gguf->config.num_key_value_heads, cfg.num_key_value_heads);
  EXPECT_FALSE(from_gguf->config.tie_word_embeddings);
  torch::NoGradGuard g;
  llm::ForwardInputs in;
  in.input_ids = torch::randint(0, cfg.vocab_size, {2, 9});
  EXPECT_TRUE(torch::equal(from_hf->forward(in), from_gguf->forward(in)));
}

TEST(GgufLlama, MissingOrUnsupportedMetadataIsAnError) {
  auto message = [](const GgufBuilder& b) {
    try {
      llm::llama_config_from_gguf(parse(b.build()));
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  GgufBuilder b;
  b.kv_str("general.architecture", "gpt2");
  EXPECT_NE(message(b).find("only Llama models"), std::string::npos) << message(b);
  b = GgufBuilder();
  b.kv_str("general.architecture", "llama");
  EXPECT_NE(message(b).find("metadata 'llama.block_count' is missing"), std::string::npos) << message(b);
  b.kv_str("llama.rope.scaling.type", "yarn");
  EXPECT_NE(message(b).find("rope scaling is not supported"), std::string::npos) << message(b);
  test::TempDir dir;
  test::write_text(dir / "x.bin", "not a model");
  EXPECT_THROW(llm::load_llama(dir / "x.bin"), CheckpointError);
}
