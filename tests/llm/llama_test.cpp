// Llama invariants on tiny random models: cache == full forward, padding (left/right) == unpadded,
// inputs_embeds == input_ids, LoRA with B = 0 == base, merge == unmerged, checkpointing == plain,
// save/load round trips, added tokens, config and checkpoint errors.
#include <nlohmann/json.hpp>

#include <numeric>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"

using namespace sbtrec;
using namespace sbtrec::llm;

namespace {
LlamaForCausalLM tiny(uint64_t seed = 0, bool tie = false) {
  torch::manual_seed(seed);
  auto c = llama_tiny();
  c.tie_word_embeddings = tie;
  LlamaForCausalLM m(c);
  // Larger weights than the init so logits are peaked (no near-ties in argmax comparisons).
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.normal_(0, 0.3);
  for (auto& item : m->named_parameters())
    if (item.key().find("norm") != std::string::npos) item.value().uniform_(0.5, 1.5);
  m->eval();
  return m;
}
torch::Tensor ids(std::vector<int64_t> v) { return torch::tensor(v, torch::kInt64).unsqueeze(0); }
torch::Tensor logits_of(LlamaForCausalLMImpl& m, const torch::Tensor& x, const torch::Tensor& mask = {},
                        const torch::Tensor& pos = {}) {
  ForwardInputs in;
  in.input_ids = x;
  in.attention_mask = mask;
  in.position_ids = pos;
  return m.forward(in);
}
double maxdiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }
// A rank-4 adapter (alpha 8) on all seven projections, with the given dropout.
LoraOptions rank4_lora(double dropout = 0.0) {
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = dropout;
  return o;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(LlamaConfig, ParsesHuggingFaceFieldsAndRejectsUnsupported) {
  auto c = parse_llama_config(R"({"hidden_size": 64, "intermediate_size": 100, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "rms_norm_eps": 1e-6,
      "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}, "eos_token_id": [2, 7],
      "dtype": "bfloat16", "model_type": "llama", "architectures": ["LlamaForCausalLM"]})", "c.json");
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(c.dtype(), torch::kBFloat16);
  auto err = [](const std::string& json) {
    try {
      parse_llama_config(json, "c.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string base = R"("hidden_size": 64, "intermediate_size": 100, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 50)";
  EXPECT_NE(err("{" + base + R"(, "rope_scaling": {"type": "linear", "factor": 2.0}})").find("'rope_scaling'"), std::string::npos);
  EXPECT_NE(err("{" + base + R"(, "architectures": ["MistralForCausalLM"]})").find("'architectures'"), std::string::npos);
  EXPECT_NE(err("{" + base + R"(, "attention_bias": true})").find("attention_bias"), std::string::npos);
  EXPECT_NE(err(R"({"hidden_size": 64})").find("'intermediate_size' is missing"), std::string::npos);
  EXPECT_NE(err("{" + base + R"(, "num_key_value_heads": 3})").find("num_key_value_heads"), std::string::npos);
  EXPECT_NE(err("{" + base + R"(, "torch_dtype": "float8"})").find("torch_dtype"), std::string::npos);
  EXPECT_NE(err("not json").find("invalid JSON"), std::string::npos);
  EXPECT_EQ(llama2_7b().hidden_size, 4096);
  EXPECT_EQ(parse_llama_config(llama_config_to_json(llama_tiny()), "x").num_key_value_heads, 2);
}

TEST(Llama, CachedDecodingEqualsFullForward) {
  auto m = tiny(1);
  auto x = torch::randint(3, 128, {2, 9}, torch::kInt64);
  torch::NoGradGuard ng;
  auto full = logits_of(*m, x);  // [2, 9, V]
  KVCache cache(m->config.num_hidden_layers, 4);  // small capacity: exercises growth
  ForwardInputs in;
  in.cache = &cache;
  in.input_ids = x.narrow(1, 0, 5);
  auto first = m->forward(in);
  EXPECT_LT(maxdiff(first, full.narrow(1, 0, 5)), 1e-4);
  for (int t = 5; t < 9; ++t) {
    in.input_ids = x.narrow(1, t, 1);
    EXPECT_LT(maxdiff(m->forward(in), full.narrow(1, t, 1)), 1e-4) << t;
  }
}

TEST(Llama, LeftAndRightPaddingMatchUnpaddedRows) {
  auto m = tiny(2);
  torch::NoGradGuard ng;
  auto row = torch::randint(3, 128, {1, 6}, torch::kInt64);
  auto alone = logits_of(*m, row);  // [1, 6, V]
  auto pad = torch::zeros({1, 3}, torch::kInt64);
  auto left = torch::cat({torch::cat({pad, row}, 1), torch::randint(3, 128, {1, 9}, torch::kInt64)}, 0);
  auto left_mask = torch::ones({2, 9}, torch::kInt64);
  left_mask.index_put_({0, torch::indexing::Slice(0, 3)}, 0);
  auto l = logits_of(*m, left, left_mask);  // positions from the mask
  EXPECT_LT(maxdiff(l.select(0, 0).narrow(0, 3, 6), alone.squeeze(0)), 1e-4);
  auto right = torch::cat({torch::cat({row, pad}, 1), torch::randint(3, 128, {1, 9}, torch::kInt64)}, 0);
  auto right_mask = torch::ones({2, 9}, torch::kInt64);
  right_mask.index_put_({0, torch::indexing::Slice(6, 9)}, 0);
  auto r = logits_of(*m, right, right_mask);
  EXPECT_LT(maxdiff(r.select(0, 0).narrow(0, 0, 6), alone.squeeze(0)), 1e-4);
  EXPECT_FALSE(torch::isnan(l).any().item<bool>());
}

TEST(Llama, InputsEmbedsPathEqualsIds) {
  auto m = tiny(3);
  torch::NoGradGuard ng;
  auto x = torch::randint(0, 128, {2, 7}, torch::kInt64);
  ForwardInputs in;
  in.inputs_embeds = m->model->embed_tokens(x);
  EXPECT_LT(maxdiff(m->forward(in), logits_of(*m, x)), 1e-5);
}

TEST(Lora, ZeroBEqualsBaseAndMergeEqualsUnmerged) {
  auto m = tiny(4);
  auto x = torch::randint(0, 128, {2, 7}, torch::kInt64);
  torch::Tensor base;
  {
    torch::NoGradGuard ng;
    base = logits_of(*m, x);
  }
  m->add_lora(rank4_lora());
  m->eval();
  torch::NoGradGuard ng;
  EXPECT_EQ(maxdiff(logits_of(*m, x), base), 0.0);  // B = 0 at initialisation
  EXPECT_EQ(m->lora_layers().size(), 2u * 7u);
  for (auto& l : m->lora_layers()) l->lora_B->weight.normal_(0, 0.1);
  auto adapted = logits_of(*m, x);
  EXPECT_GT(maxdiff(adapted, base), 1e-3);
  m->merge_lora();
  EXPECT_LT(maxdiff(logits_of(*m, x), adapted), 1e-4);
  m->unmerge_lora();
  EXPECT_LT(maxdiff(logits_of(*m, x), adapted), 1e-4);
  // Only adapter weights train; the report counts them as PEFT does.
  int64_t trainable = 0;
  for (auto& p : m->parameters())
    if (p.requires_grad()) trainable += p.numel();
  const int64_t per_layer = 4 * (64 + 64) + 4 * (64 + 32) * 2 + 4 * (64 + 64) + 4 * (64 + 160) * 3;  // q, k, v, o, gate, up, down
  EXPECT_EQ(trainable, 2 * per_layer);
  EXPECT_NE(m->trainable_report().find("trainable params: " + std::to_string(trainable)), std::string::npos);
}

TEST(Lora, InferenceAdapterAndBf16GemmsMatchTheirDefinitions) {
  // One projection, 20 rows (past the few-row kernel): the no-gradient adapter path adds
  // scaling * (x A^T) B^T in place, and gemm_dtype bf16 multiplies bf16(x) and bf16(W).
  torch::manual_seed(7);
  LoraLinear lin(64, 48);
  {
    torch::NoGradGuard ng;
    lin->weight.normal_(0, 0.3);
  }
  lin->enable_lora(rank4_lora());
  lin->eval();
  torch::NoGradGuard ng;
  lin->lora_B->weight.normal_(0, 0.1);
  auto x = torch::randn({2, 10, 64});
  const auto& A = lin->lora_A->weight;
  const auto& B = lin->lora_B->weight;
  auto adapter = torch::matmul(torch::matmul(x, A.t()), B.t()) * lin->scaling;  // [2, 10, 48]
  auto want = torch::linear(x, lin->weight) + adapter;
  EXPECT_LT(maxdiff(lin(x), want), 1e-5);
  lin->gemm_dtype = torch::kBFloat16;
  auto want_bf16 = torch::linear(x.to(torch::kBFloat16), lin->weight.to(torch::kBFloat16)).to(torch::kFloat32) + adapter;
  auto got = lin(x);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LT(maxdiff(got, want_bf16), 1e-5);
  EXPECT_GT(maxdiff(got, want), 1e-4);  // bf16's rounding shows: the option took effect
  // The bf16 copy follows the weight: after a merge it is re-made from the merged weight.
  lin->merge();
  auto merged_bf16 = torch::linear(x.to(torch::kBFloat16), lin->weight.to(torch::kBFloat16)).to(torch::kFloat32);
  EXPECT_LT(maxdiff(lin(x), merged_bf16), 1e-5);
  // llm.cpu_gemm: aten multiplies through torch::linear itself (bit for bit), onednn (the default) up to rounding.
  lin->unmerge();
  lin->gemm_dtype = std::nullopt;
  lin->onednn_gemm = false;
  EXPECT_TRUE(torch::equal(lin->base_forward(x), torch::linear(x, lin->weight)));
  lin->onednn_gemm = true;
  EXPECT_LT(maxdiff(lin->base_forward(x), torch::linear(x, lin->weight)), 1e-5);
  lin->gemm_dtype = torch::kBFloat16;
  // Few rows (decoding) and gradients keep float32.
  auto x1 = torch::randn({1, 64});
  EXPECT_LT(maxdiff(lin(x1), torch::linear(x1, lin->weight) + torch::matmul(torch::matmul(x1, A.t()), B.t()) * lin->scaling), 1e-5);
}

TEST(Llama, Bf16GemmDtypeRunsThePromptsAttentionInBf16) {
  // gemm_dtype bf16 on the attention: many queries without gradient attend on bf16 q, k, v (result back
  // in float32); one query (a decoding step) stays float32.
  torch::manual_seed(5);
  const auto c = llama_tiny();
  LlamaAttention att(c);
  att->eval();
  torch::NoGradGuard ng;
  for (auto& p : att->parameters()) p.normal_(0, 0.3);
  const int64_t B = 2, T = 9, H = att->heads, Hkv = att->kv_heads, E = att->head_dim;
  auto x = torch::randn({B, T, c.hidden_size});
  const AttentionInputs in{torch::ones({B, T, E}), torch::zeros({B, T, E}), {}, true};  // no rotation, causal
  auto q = att->q_proj(x).view({B, T, H, E}).transpose(1, 2);
  auto k = att->k_proj(x).view({B, T, Hkv, E}).transpose(1, 2);
  auto v = att->v_proj(x).view({B, T, Hkv, E}).transpose(1, 2);
  auto o = at::scaled_dot_product_attention(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16), {}, 0.0,
                                            true, 1.0 / std::sqrt((double)E), H != Hkv).to(torch::kFloat32);
  auto want = att->o_proj(o.transpose(1, 2).reshape({B, T, H * E}));  // [B, T, D]
  auto fp32 = att->forward(x, in, nullptr, 0);
  att->gemm_dtype = torch::kBFloat16;
  auto got = att->forward(x, in, nullptr, 0);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LT(maxdiff(got, want), 1e-5);
  EXPECT_GT(maxdiff(got, fp32), 1e-4);  // bf16's rounding shows: the option took effect
  const AttentionInputs one{torch::ones({B, 1, E}), torch::zeros({B, 1, E}), {}, false};
  auto x1 = x.narrow(1, 0, 1);
  auto decoded = att->forward(x1, one, nullptr, 0);
  att->gemm_dtype = std::nullopt;
  EXPECT_EQ(maxdiff(decoded, att->forward(x1, one, nullptr, 0)), 0.0);
  // The model's switch reaches every layer's attention.
  auto m = tiny(2);
  m->set_gemm_dtype(torch::kBFloat16);
  for (auto& layer : *m->model->layers) EXPECT_EQ(layer->as<LlamaDecoderLayer>()->self_attn->gemm_dtype, torch::kBFloat16);
}

TEST(Lora, GradientCheckpointingGivesTheSameGradients) {
  const LoraOptions o = rank4_lora(0.1);  // dropout masks must be replayed in the recomputation
  auto x = torch::randint(0, 128, {2, 8}, torch::kInt64);
  std::vector<torch::Tensor> grads[2];
  double losses[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    auto m = tiny(5);
    torch::manual_seed(11);
    m->add_lora(o);
    for (auto& l : m->lora_layers()) l->lora_B->weight.data().normal_(0, 0.1);
    m->train();
    m->set_gradient_checkpointing(ckpt == 1);
    torch::manual_seed(12);
    auto loss = LlamaForCausalLMImpl::causal_lm_loss(logits_of(*m, x), x);
    loss.backward();
    losses[ckpt] = loss.item<double>();
    for (auto& l : m->lora_layers()) {
      grads[ckpt].push_back(l->lora_A->weight.grad().clone());
      grads[ckpt].push_back(l->lora_B->weight.grad().clone());
    }
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-6);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LT(maxdiff(grads[0][i], grads[1][i]), 1e-5) << i;
}

TEST(Lora, OneDnnProductsGiveAtensLossAndGradients) {
  // llm.cpu_gemm onednn vs aten in training: LoRA's node (with dropout), frozen projections without an
  // adapter (nn::frozen_linear), the chunked output-layer loss and the logits path; the gradients of
  // the adapters and of the input embeddings agree up to float rounding.
  LoraOptions o = rank4_lora(0.1);
  o.target_modules = {"q_proj", "v_proj", "down_proj"};  // k, o, gate, up frozen without an adapter
  auto ids = torch::randint(0, 128, {2, 9}, torch::kInt64);
  std::vector<torch::Tensor> grads[2];
  double losses[2][2];
  for (int onednn = 0; onednn < 2; ++onednn) {
    auto m = tiny(8);
    torch::manual_seed(13);
    m->add_lora(o);
    for (auto& l : m->lora_layers()) l->lora_B->weight.data().normal_(0, 0.1);
    m->train();
    m->set_onednn_gemm(onednn == 1);
    for (int path = 0; path < 2; ++path) {
      m->zero_grad();
      ForwardInputs in;
      in.inputs_embeds = m->model->embed_tokens->weight.index_select(0, ids.view(-1)).view({2, 9, -1}).detach().requires_grad_(true);
      torch::manual_seed(14);  // the same dropout masks for both settings
      auto loss = path == 0 ? m->loss(in, ids) : LlamaForCausalLMImpl::causal_lm_loss(m->forward(in), ids);
      loss.backward();
      losses[onednn][path] = loss.item<double>();
      grads[onednn].push_back(in.inputs_embeds.grad().clone());
      for (auto& l : m->lora_layers()) {
        grads[onednn].push_back(l->lora_A->weight.grad().clone());
        grads[onednn].push_back(l->lora_B->weight.grad().clone());
      }
    }
  }
  for (int path = 0; path < 2; ++path) EXPECT_NEAR(losses[0][path], losses[1][path], 1e-5) << path;
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_GT(grads[0][i].abs().max().item<double>(), 0) << i;
    EXPECT_LT(maxdiff(grads[0][i], grads[1][i]), 1e-5) << i;
  }
}

TEST(Llama, AddedTokensAppendRowsAndKeepOldLogits) {
  for (bool tie : {false, true}) {
    auto m = tiny(6, tie);
    torch::NoGradGuard ng;
    auto x = torch::randint(0, 128, {1, 5}, torch::kInt64);
    auto before = logits_of(*m, x);
    m->add_tokens(3);
    EXPECT_EQ(m->config.vocab_size, 131);
    auto after = logits_of(*m, x);
    EXPECT_EQ(after.size(-1), 131);
    EXPECT_LT(maxdiff(after.narrow(2, 0, 128), before), 1e-5) << tie;
    EXPECT_NO_THROW(logits_of(*m, ids({1, 129, 130})));
  }
}

TEST(Llama, SaveLoadRoundTripSingleAndShardedAndAdapters) {
  test::TempDir dir;
  for (bool tie : {false, true}) {
    auto m = tiny(7, tie);
    const std::string d = dir / (tie ? "tied" : "untied");
    save_llama(d, *m);
    auto back = load_llama(d);
    auto x = torch::randint(0, 128, {1, 6}, torch::kInt64);
    torch::NoGradGuard ng;
    EXPECT_EQ(maxdiff(logits_of(*back, x), logits_of(*m, x)), 0.0) << tie;
    auto bf16 = load_llama(d, torch::kBFloat16);
    EXPECT_EQ(bf16->model->embed_tokens->weight.scalar_type(), torch::kBFloat16);
    EXPECT_LT(maxdiff(logits_of(*bf16, x), logits_of(*m, x)), 0.5);  // bf16 rounding on peaked logits
  }
  // Shards: split the single file into two and write an index.
  auto m = tiny(8);
  save_llama(dir / "sharded", *m);
  auto all = safetensors::load(dir / "sharded/model.safetensors");
  std::map<std::string, torch::Tensor> a, b;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  int i = 0;
  for (auto& [k, v] : all) {
    const bool first = i++ % 2 == 0;
    (first ? a : b)[k] = v;
    index["weight_map"][k] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::filesystem::remove(dir / "sharded/model.safetensors");
  safetensors::save(dir / "sharded/model-00001-of-00002.safetensors", a);
  safetensors::save(dir / "sharded/model-00002-of-00002.safetensors", b);
  test::write_text(dir / "sharded/model.safetensors.index.json", index.dump());
  auto sharded = load_llama(dir / "sharded");
  auto x = torch::randint(0, 128, {1, 6}, torch::kInt64);
  {
    torch::NoGradGuard ng;
    EXPECT_EQ(maxdiff(logits_of(*sharded, x), logits_of(*m, x)), 0.0);
  }
  // Adapter round trip in PEFT's format.
  LoraOptions o;
  o.r = 2;
  o.alpha = 4;
  o.dropout = 0;
  o.target_modules = {"q_proj", "v_proj", "down_proj"};
  m->add_lora(o);
  {
    torch::NoGradGuard ng;
    for (auto& l : m->lora_layers()) l->lora_B->weight.normal_(0, 0.2);
  }
  m->eval();
  save_adapter(dir / "adapter", *m, "tiny");
  auto keys = safetensors::File(dir / "adapter/adapter_model.safetensors").names();
  EXPECT_EQ(keys.size(), 2u * 3u * 2u);
  EXPECT_EQ(keys[0].rfind("base_model.model.model.layers.", 0), 0u) << keys[0];
  auto fresh = load_llama(dir / "sharded");
  load_adapter(dir / "adapter", *fresh);
  fresh->eval();
  torch::NoGradGuard ng;
  EXPECT_LT(maxdiff(logits_of(*fresh, x), logits_of(*m, x)), 1e-5);
}

TEST(Llama, CheckpointErrorsNameTheProblem) {
  test::TempDir dir;
  auto m = tiny(9);
  save_llama(dir / "ok", *m);
  // A copy of the good checkpoint with its tensors replaced by `tensors`.
  auto all = safetensors::load(dir / "ok/model.safetensors");
  auto variant = [&](const std::string& name, const std::map<std::string, torch::Tensor>& tensors) {
    std::filesystem::create_directories(dir / name);
    std::filesystem::copy_file(dir / "ok/config.json", dir / (name + "/config.json"));
    safetensors::save(dir / (name + "/model.safetensors"), tensors);
    return dir / name;
  };
  auto without = all;
  without.erase("model.layers.1.mlp.up_proj.weight");
  const auto missing = variant("missing", without);
  EXPECT_NE(error_of([&] { load_llama(missing); }).find("missing tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos);
  auto bad = all;
  bad["model.norm.weight"] = torch::ones({65});
  const auto shape = variant("shape", bad);
  EXPECT_NE(error_of([&] { load_llama(shape); }).find("'model.norm.weight' has shape [65]"), std::string::npos);
  auto extra = all;
  extra["model.layers.2.mlp.up_proj.weight"] = torch::ones({1});
  const auto unexpected = variant("extra", extra);
  EXPECT_NE(error_of([&] { load_llama(unexpected); }).find("unexpected tensor"), std::string::npos);
  // pytorch_model.bin only.
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::copy_file(dir / "ok/config.json", dir / "bin/config.json");
  test::write_text(dir / "bin/pytorch_model.bin", "x");
  EXPECT_NE(error_of([&] { load_llama(dir / "bin"); }).find("safetensors"), std::string::npos);
  // Missing config.json, missing config field, truncated weights.
  EXPECT_NE(error_of([&] { load_llama(dir / "nothing"); }).find("config.json"), std::string::npos);
  std::filesystem::create_directories(dir / "field");
  test::write_text(dir / "field/config.json", R"({"hidden_size": 64})");
  EXPECT_NE(error_of([&] { load_llama(dir / "field"); }).find("is missing"), std::string::npos);
  std::filesystem::create_directories(dir / "trunc");
  std::filesystem::copy_file(dir / "ok/config.json", dir / "trunc/config.json");
  const std::string bytes = test::read_text(dir / "ok/model.safetensors");
  test::write_text(dir / "trunc/model.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(error_of([&] { load_llama(dir / "trunc"); }).find("truncated"), std::string::npos);
  // Adapter config problems.
  std::filesystem::create_directories(dir / "adapter");
  test::write_text(dir / "adapter/adapter_config.json", R"({"peft_type": "LORA", "r": 4, "use_dora": true, "target_modules": ["q_proj"]})");
  EXPECT_NE(error_of([&] { load_adapter(dir / "adapter", *m); }).find("DoRA"), std::string::npos);
}

TEST(Generation, GreedyIsDeterministicAndMatchesStepwiseArgmax) {
  auto m = tiny(10);
  auto prompt = ids({1, 17, 42, 99});
  GenerationOptions o;
  o.max_new_tokens = 8;
  auto a = generate(*m, prompt, {}, o);
  auto b = generate(*m, prompt, {}, o);
  EXPECT_TRUE(torch::equal(a, b));
  ASSERT_EQ(a.size(1), 12);
  // Without a cache: argmax of the full forward at each step.
  torch::NoGradGuard ng;
  auto seq = prompt;
  for (int i = 0; i < 8; ++i) {
    auto next = logits_of(*m, seq).select(1, seq.size(1) - 1).argmax(-1, true);
    seq = torch::cat({seq, next}, 1);
  }
  EXPECT_TRUE(torch::equal(seq, a));
  // Stop tokens end a row early; the embeddings path gives the same tokens.
  o.eos_token_ids = {a[0][6].item<int64_t>()};
  auto stopped = generate(*m, prompt, {}, o);
  EXPECT_EQ(stopped.size(1), 7);
  o.eos_token_ids.clear();
  auto from_embeds = generate_from_embeds(*m, m->model->embed_tokens(prompt), {}, o);
  EXPECT_TRUE(torch::equal(from_embeds, a.narrow(1, 4, 8)));
}

TEST(TokenTrie, AllowsTheContinuationsOfItsSequencesAndNamesTheOneCompleted) {
  // EOS 2, end of line 9: sequences are cut after their first finishing token; one without gets EOS.
  TokenTrie t({{5, 6, 2}, {5, 7, 2, 8}, {5, 6, 9}, {4}, {5, 6, 2}}, {2, 9});
  EXPECT_EQ(t.allowed({}), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(t.allowed({5}), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(t.allowed({5, 6}), (std::vector<int64_t>{2, 9}));
  EXPECT_EQ(t.allowed({4}), (std::vector<int64_t>{2}));       // {4} + EOS
  EXPECT_EQ(t.allowed({5, 7, 2}), (std::vector<int64_t>{2, 9}));  // finished: the finishing tokens
  EXPECT_EQ(t.allowed({3}), (std::vector<int64_t>{2, 9}));    // off the tree
  EXPECT_EQ(t.sequences()[1], (std::vector<int64_t>{5, 7, 2}));
  EXPECT_EQ(t.sequences()[3], (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(t.sequences_ending({5, 7, 2, 0, 0}), (std::vector<size_t>{1}));  // filler after EOS ignored
  EXPECT_EQ(t.sequences_ending({5, 6, 2}), (std::vector<size_t>{0, 4}));     // a repeated sequence: both
  EXPECT_EQ(t.sequences_ending({5, 6, 9}), (std::vector<size_t>{2}));
  EXPECT_TRUE(t.sequences_ending({5, 6}).empty());  // cut short (max_new_tokens)
  EXPECT_THROW(TokenTrie({{1}}, {}), ConfigError);
}

TEST(Generation, ConstrainedGreedyAndBeamWriteOnlyAllowedSequences) {
  auto m = tiny(12);
  auto batch = torch::cat({ids({1, 5, 6, 7, 8}), ids({0, 0, 1, 9, 10})}, 0);
  auto mask = torch::tensor({1, 1, 1, 1, 1, 0, 0, 1, 1, 1}, torch::kInt64).view({2, 5});
  GenerationOptions o;
  o.max_new_tokens = 6;
  o.eos_token_ids = {2};
  o.pad_token_id = 0;
  // Everything allowed = unconstrained.
  for (int64_t beams : {1, 3}) {
    o.num_beams = beams;
    o.allowed_tokens = nullptr;
    auto free = generate(*m, batch, mask, o);
    o.allowed_tokens = [](int64_t, const std::vector<int64_t>&) {
      std::vector<int64_t> all(128);
      std::iota(all.begin(), all.end(), 0);
      return all;
    };
    EXPECT_TRUE(torch::equal(generate(*m, batch, mask, o), free)) << beams;
  }
  // Per-row trees: every output is one of its row's sequences; greedy picks the best allowed token at
  // each step (the row's argmax over the allowed set, checked against a forward without constraint).
  const std::vector<TokenTrie> tries = {TokenTrie({{30, 31, 2}, {30, 40, 41, 2}, {50, 2}}, {2}),
                                        TokenTrie({{60, 2}, {61, 62, 63, 64, 2}}, {2})};
  o.allowed_tokens = [&](int64_t row, const std::vector<int64_t>& g) { return tries[(size_t)row].allowed(g); };
  for (int64_t beams : {1, 3}) {
    o.num_beams = beams;
    auto out = generate(*m, batch, mask, o).slice(1, 5).contiguous();
    for (int64_t r = 0; r < 2; ++r) {
      std::vector<int64_t> row(out[r].data_ptr<int64_t>(), out[r].data_ptr<int64_t>() + out.size(1));
      EXPECT_EQ(tries[(size_t)r].sequences_ending(row).size(), 1u) << beams << " row " << r << ": " << out[r];
    }
  }
  o.num_beams = 1;
  auto out = generate(*m, batch, mask, o);
  torch::NoGradGuard ng;
  auto first = logits_of(*m, batch, mask).select(1, 4);  // [2, V]: the first new token's logits
  EXPECT_EQ(out[0][5].item<int64_t>(), first[0].index_select(0, ids({30, 50}).view(-1)).argmax().item<int64_t>() == 0 ? 30 : 50);
  EXPECT_EQ(out[1][5].item<int64_t>(), first[1].index_select(0, ids({60, 61}).view(-1)).argmax().item<int64_t>() == 0 ? 60 : 61);
  // A function that allows nothing is an error, not a silent free generation.
  o.allowed_tokens = [](int64_t, const std::vector<int64_t>&) { return std::vector<int64_t>{}; };
  EXPECT_THROW(generate(*m, batch, mask, o), Error);
}

TEST(Generation, BatchedLeftPaddingEqualsSingleRows) {
  auto m = tiny(11);
  GenerationOptions o;
  o.max_new_tokens = 6;
  for (int64_t beams : {1, 3}) {
    o.num_beams = beams;
    auto r0 = generate(*m, ids({1, 5, 6, 7, 8}), {}, o);
    auto r1 = generate(*m, ids({1, 9, 10}), {}, o);
    auto batch = torch::cat({ids({1, 5, 6, 7, 8}), ids({0, 0, 1, 9, 10})}, 0);
    auto mask = torch::tensor({1, 1, 1, 1, 1, 0, 0, 1, 1, 1}, torch::kInt64).view({2, 5});
    auto out = generate(*m, batch, mask, o);
    EXPECT_TRUE(torch::equal(out.select(0, 0).narrow(0, 5, 6), r0.select(0, 0).narrow(0, 5, 6))) << beams;
    EXPECT_TRUE(torch::equal(out.select(0, 1).narrow(0, 5, 6), r1.select(0, 0).narrow(0, 3, 6))) << beams;
  }
}

// A shared prompt prefix run once (prefill_prefix) and continued by each row's own tokens, with the
// rows' padding between the two, generates what the whole left-padded prompts generate, greedy and beam;
// the prefix's cache is left as it was, so the next batch reuses it.
TEST(Generation, SharedPrefixEqualsWholePrompts) {
  auto m = tiny(14);
  GenerationOptions o;
  o.max_new_tokens = 6;
  const auto prefix = ids({1, 21, 22, 23});
  auto whole = torch::cat({ids({1, 21, 22, 23, 5, 6, 7, 8}), ids({0, 0, 1, 21, 22, 23, 9, 10})}, 0);  // [2, 8]
  auto whole_mask = torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, torch::kInt64).view({2, 8});
  auto rest = torch::cat({ids({5, 6, 7, 8}), ids({0, 0, 9, 10})}, 0);  // [2, 4]
  auto rest_mask = torch::tensor({1, 1, 1, 1, 0, 0, 1, 1}, torch::kInt64).view({2, 4});
  torch::Tensor embeds_whole, embeds_rest, embeds_prefix;
  {
    torch::NoGradGuard ng;
    embeds_whole = m->model->embed_tokens(whole);
    embeds_rest = m->model->embed_tokens(rest);
    embeds_prefix = m->model->embed_tokens(prefix);
  }
  const auto shared = prefill_prefix(*m, embeds_prefix);
  EXPECT_EQ(shared.length, 4);
  for (int64_t beams : {1, 3}) {
    o.num_beams = beams;
    const auto expected = generate_from_embeds(*m, embeds_whole, whole_mask, o);
    const auto got = generate_from_embeds(*m, embeds_rest, rest_mask, o, &shared);
    EXPECT_TRUE(torch::equal(got, expected)) << beams << "\n" << got << "\n" << expected;
    // Without padding among the rows' own tokens, too.
    const auto one = generate_from_embeds(*m, embeds_rest.narrow(0, 0, 1), {}, o, &shared);
    EXPECT_TRUE(torch::equal(one, generate_from_embeds(*m, embeds_whole.narrow(0, 0, 1), {}, o))) << beams;
  }
  EXPECT_EQ(shared.cache.length(), 4) << "the prefix's cache is reused, not extended";
}

// A model made to prefer an added token at every step (every embedding shares a large first
// component, which only that token's lm_head row reads) emits it without suppression and never with
// it, in greedy and beam search; out-of-vocabulary suppressed ids are errors.
TEST(Generation, SuppressedTokensAreNeverEmitted) {
  auto m = tiny(12);
  m->add_tokens(3);
  const int64_t added = m->config.vocab_size - 2;  // the middle one of the three
  {
    torch::NoGradGuard ng;
    m->model->embed_tokens->weight.select(1, 0).fill_(100.0);
    m->lm_head->weight.select(0, added).zero_().select(0, 0).fill_(10.0);
  }
  auto prompt = ids({1, 17, 42, 99});
  for (const int64_t beams : {1, 3}) {
    SCOPED_TRACE(beams == 1 ? "greedy" : "beam search");
    GenerationOptions o;
    o.max_new_tokens = 6;
    o.num_beams = beams;
    auto free_run = generate(*m, prompt, {}, o).narrow(1, 4, 6);
    EXPECT_TRUE(free_run.eq(added).all().item<bool>()) << free_run;  // the bias works
    o.suppress_token_ids = {added};
    auto out = generate(*m, prompt, {}, o).narrow(1, 4, 6);
    EXPECT_FALSE(out.eq(added).any().item<bool>()) << out;
    auto from_embeds = generate_from_embeds(*m, m->model->embed_tokens(prompt).detach(), {}, o);
    EXPECT_FALSE(from_embeds.eq(added).any().item<bool>()) << from_embeds;
  }
  GenerationOptions bad;
  bad.suppress_token_ids = {m->config.vocab_size};
  EXPECT_NE(error_of([&] { generate(*m, prompt, {}, bad); }).find("suppress_token_ids"), std::string::npos);
}

// An all-ones attention mask (on the host) and no mask give the same logits and generations.
TEST(Llama, AllOnesMaskEqualsNoMask) {
  auto m = tiny(13);
  auto x = torch::cat({ids({1, 5, 6, 7, 8}), ids({1, 9, 10, 11, 12})}, 0);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(logits_of(*m, x, torch::ones({2, 5}, torch::kInt64)), logits_of(*m, x)));
  GenerationOptions o;
  o.max_new_tokens = 5;
  EXPECT_TRUE(torch::equal(generate(*m, x, torch::ones({2, 5}, torch::kInt64), o), generate(*m, x, {}, o)));
}
