// Parity with Hugging Face transformers + PEFT on tiny random checkpoints covering multi-head and
// grouped-query attention, tied and untied embeddings, rope_theta other than 10000 and odd sizes
// (fixtures written at test time by scripts/make_parity_fixtures.py): logits (max abs diff <= 1e-4
// at real positions, left and right padding), loss, LoRA logits and A/B gradients, d loss / d inputs_embeds
// with and without checkpointing (max abs diff <= 1e-4), greedy, beam and batched greedy ids from ids and
// from left-padded embeddings of different lengths, with and without suppressed tokens (identical),
// rank-stabilised adapters, loading an adapter over an existing one, sharded checkpoints, and an
// sbtrec-exported adapter in PEFT.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"

using namespace sbtrec;
using namespace sbtrec::llm;
using torch::indexing::Slice;

namespace {

// Fixtures are made once per build tree and fixture script (ctest runs each TEST in its own process).
class FixtureEnv : public ::testing::Environment {
 public:
  static std::string dir, error;
  void SetUp() override {
    if (!std::filesystem::exists(SBTREC_PYTHON)) {
      error = std::string("missing ") + SBTREC_PYTHON + " (run ./scripts/setup.sh)";
      return;
    }
    const std::string script = test::source("scripts/make_parity_fixtures.py");
    // The script and the pinned reference versions determine the fixtures.
    const std::string inputs = test::read_text(script) + test::read_text(test::source("scripts/requirements-parity.txt")) +
                               test::read_text(test::source("scripts/requirements.txt"));
    dir = test::cached_fixture("parity", inputs, std::string(SBTREC_PYTHON) + " " + script, &error);
  }
};
std::string FixtureEnv::dir, FixtureEnv::error;
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new FixtureEnv);

// The bound of a parity check: 1e-4 relative to the reference's scale (at least 1). float32 sums in
// another order differ by more than 1e-4 absolute on large values, and the order depends on the CPU's
// kernels (AVX2 and AVX-512 machines round differently).
double bound(const torch::Tensor& want) { return 1e-4 * std::max(1.0, want.abs().max().item<double>()); }

double maxdiff_where(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  auto m = mask.to(torch::kBool).unsqueeze(-1).expand_as(a);
  return (a - b).abs().masked_select(m).max().item<double>();
}

torch::Tensor logits(LlamaForCausalLMImpl& m, const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& pos) {
  ForwardInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.position_ids = pos;
  return m.forward(in);
}

GenerationOptions no_eos(int64_t n, int64_t beams) {
  GenerationOptions o;
  o.max_new_tokens = n;
  o.num_beams = beams;
  return o;
}

}  // namespace

class HFParity : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!FixtureEnv::error.empty()) GTEST_FAIL() << FixtureEnv::error;
    root = FixtureEnv::dir + "/" + GetParam();
    fx = safetensors::load(root + "/fixtures.safetensors");
  }
  std::string root;
  std::map<std::string, torch::Tensor> fx;
};

TEST_P(HFParity, LogitsAndLossWithLeftAndRightPadding) {
  auto m = load_llama(root + "/model");
  torch::NoGradGuard ng;
  auto l = logits(*m, fx["input_ids"], fx["attention_mask"], fx["position_ids"]);
  EXPECT_LE(maxdiff_where(l, fx["logits"], fx["attention_mask"]), bound(fx["logits"]));
  auto r = logits(*m, fx["right_input_ids"], fx["right_attention_mask"], {});
  EXPECT_LE(maxdiff_where(r, fx["right_logits"], fx["right_attention_mask"]), bound(fx["right_logits"]));
  const double loss = LlamaForCausalLMImpl::causal_lm_loss(l, fx["labels"]).item<double>();
  EXPECT_NEAR(loss, fx["loss"].item<double>(), 1e-4);
}

// Compares every LoRA gradient of `m` with PEFT's (fixture keys grad.base_model.model.<name>).
void expect_lora_grads_match(LlamaForCausalLMImpl& m, std::map<std::string, torch::Tensor>& fx) {
  int compared = 0;
  for (auto& item : m.named_parameters()) {
    if (item.key().find(".lora_") == std::string::npos) continue;
    const std::string key = "grad.base_model.model." + item.key();
    ASSERT_TRUE(fx.count(key)) << key;
    const auto& want = fx[key];
    EXPECT_LE((item.value().grad() - want).abs().max().item<double>(), bound(want)) << key;
    ++compared;
  }
  EXPECT_EQ(compared, (int)std::count_if(fx.begin(), fx.end(), [](auto& kv) { return kv.first.rfind("grad.", 0) == 0; }));
}

TEST_P(HFParity, PeftAdapterLogitsLossAndGradients) {
  auto m = load_llama(root + "/model");
  load_adapter(root + "/adapter", *m);
  m->train();  // lora_dropout is 0 in the fixture, so train mode is deterministic
  auto l = logits(*m, fx["input_ids"], fx["attention_mask"], fx["position_ids"]);
  EXPECT_LE(maxdiff_where(l.detach(), fx["lora_logits"], fx["attention_mask"]), bound(fx["lora_logits"]));
  auto loss = LlamaForCausalLMImpl::causal_lm_loss(l, fx["labels"]);
  EXPECT_NEAR(loss.item<double>(), fx["lora_loss"].item<double>(), 1e-4);
  loss.backward();
  expect_lora_grads_match(*m, fx);
}

// The training path: the loss straight from hidden states (chunked linear + cross entropy, small
// chunks so several are used) against PEFT's loss and gradients from full logits.
TEST_P(HFParity, ChunkedLossFromHiddenStatesMatchesPeft) {
  auto m = load_llama(root + "/model");
  load_adapter(root + "/adapter", *m);
  m->train();
  ForwardInputs in;
  in.input_ids = fx["input_ids"];
  in.attention_mask = fx["attention_mask"];
  in.position_ids = fx["position_ids"];
  nn::LinearCrossEntropyOptions o;
  o.chunk_rows = 5;
  auto loss = m->loss(in, fx["labels"], o);
  EXPECT_NEAR(loss.item<double>(), fx["lora_loss"].item<double>(), 1e-4);
  loss.backward();
  expect_lora_grads_match(*m, fx);
}

// d loss / d inputs_embeds is what SBT-Rec's aligner and codebooks are trained by: the chunked loss
// from embeddings (row 1 left-padded, prompt and padding labelled -100) through the PEFT adapter,
// checkpointing off and on, against transformers' loss.backward() with gradient checkpointing off/on.
TEST_P(HFParity, InputsEmbedsGradientMatchesTransformersWithAndWithoutCheckpointing) {
  auto m = load_llama(root + "/model");
  load_adapter(root + "/adapter", *m);
  m->train();  // lora_dropout is 0: deterministic
  for (const bool checkpointing : {false, true}) {
    SCOPED_TRACE(checkpointing ? "gradient checkpointing on" : "gradient checkpointing off");
    const std::string suffix = checkpointing ? "_checkpointed" : "";
    m->set_gradient_checkpointing(checkpointing);
    auto x = fx["embeds"].clone().requires_grad_(true);  // [B, T, D]
    ForwardInputs in;
    in.inputs_embeds = x;
    in.attention_mask = fx["attention_mask"];
    in.position_ids = fx["position_ids"];
    nn::LinearCrossEntropyOptions o;
    o.chunk_rows = 5;
    auto loss = m->loss(in, fx["labels"], o);
    EXPECT_NEAR(loss.item<double>(), fx["embeds_loss" + suffix].item<double>(), 1e-4);
    loss.backward();
    ASSERT_TRUE(x.grad().defined());
    const auto& want = fx["embeds_grad" + suffix];
    const double diff = (x.grad() - want).abs().max().item<double>();
    EXPECT_LE(diff, bound(want)) << "max |grad| " << want.abs().max().item<double>();
    std::cout << GetParam() << " d loss / d inputs_embeds" << suffix << ": max abs diff " << diff << " (max |grad| "
              << want.abs().max().item<double>() << ")\n";
    m->zero_grad();
  }
}

TEST_P(HFParity, GreedyBeamAndBatchedGenerationIdsAreIdentical) {
  auto m = load_llama(root + "/model");
  auto prompt = fx["input_ids"].narrow(0, 0, 1);  // [1, 12]
  EXPECT_TRUE(torch::equal(generate(*m, prompt, {}, no_eos(20, 1)), fx["greedy_ids"]));
  EXPECT_TRUE(torch::equal(generate(*m, prompt, {}, no_eos(20, 3)), fx["beam_ids"]));
  auto o = no_eos(20, 3);
  o.eos_token_ids = m->config.eos_token_ids;
  auto beam_eos = generate(*m, prompt, {}, o);
  const int64_t len = fx["beam_eos_len"].item<int64_t>();
  ASSERT_EQ(beam_eos.size(1), len);
  EXPECT_TRUE(torch::equal(beam_eos, fx["beam_eos_ids"].narrow(1, 0, len)));
  auto batch = generate(*m, fx["input_ids"], fx["attention_mask"], no_eos(10, 1));
  EXPECT_TRUE(torch::equal(batch, fx["batch_greedy_ids"]));
}

// Prompts as embeddings of different lengths, left-padded: transformers' generate(inputs_embeds=...,
// attention_mask=...) returns only the new tokens, as generate_from_embeds does.
TEST_P(HFParity, GenerationFromLeftPaddedEmbeddingsOfDifferentLengthsIsIdentical) {
  auto m = load_llama(root + "/model");
  const auto& e = fx["gen_embeds"];  // [3, P, D]
  const auto& mask = fx["gen_embeds_mask"];
  const int64_t n = fx["embeds_greedy_ids"].size(1);
  auto check = [&](const GenerationOptions& o, const std::string& key) {
    auto got = generate_from_embeds(*m, e, mask, o);
    EXPECT_TRUE(torch::equal(got, fx[key])) << key << ": got\n" << got << "\nwant\n" << fx[key];
  };
  check(no_eos(n, 1), "embeds_greedy_ids");
  check(no_eos(n, 3), "embeds_beam_ids");
  const auto& s = fx["suppress_token_ids"];
  std::vector<int64_t> suppressed(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
  for (const int64_t beams : {1, 3}) {
    auto o = no_eos(n, beams);
    o.suppress_token_ids = suppressed;
    check(o, beams == 1 ? "embeds_suppressed_greedy_ids" : "embeds_suppressed_beam_ids");
  }
}

// use_rslora (scaling alpha / sqrt(r)): PEFT's adapter loads with PEFT's logits, and sbtrec's export of it
// reads back identically with the flag kept.
TEST_P(HFParity, RankStabilisedAdapterMatchesPeftAndRoundTrips) {
  auto m = load_llama(root + "/model");
  load_adapter(root + "/adapter_rslora", *m);
  EXPECT_TRUE(m->lora.use_rslora);
  EXPECT_DOUBLE_EQ(m->lora.scaling(), 4.0);  // 8 / sqrt(4), where plain LoRA would use 8 / 4
  torch::NoGradGuard ng;
  auto l = logits(*m, fx["input_ids"], fx["attention_mask"], fx["position_ids"]);
  EXPECT_LE(maxdiff_where(l, fx["rslora_logits"], fx["attention_mask"]), bound(fx["rslora_logits"]));
  test::TempDir out;
  save_adapter(out / "a", *m, root + "/model");
  EXPECT_TRUE(nlohmann::json::parse(test::read_text(out / "a/adapter_config.json"))["use_rslora"].get<bool>());
  auto back = load_llama(root + "/model");
  load_adapter(out / "a", *back);
  EXPECT_TRUE(torch::equal(logits(*back, fx["input_ids"], fx["attention_mask"], fx["position_ids"]), l));
}

// Resuming training: load_adapter on a model that already has adapters. Same rank and modules: the
// weights are replaced in place (the parameter objects an optimizer holds stay); a different adapter
// (rank, modules, even merged) is replaced by one of the saved shape.
TEST_P(HFParity, LoadAdapterOverAnExistingAdapterReplacesIt) {
  auto expect_peft_logits = [&](LlamaForCausalLMImpl& m) {
    torch::NoGradGuard ng;
    m.eval();
    auto l = logits(m, fx["input_ids"], fx["attention_mask"], fx["position_ids"]);
    EXPECT_LE(maxdiff_where(l, fx["lora_logits"], fx["attention_mask"]), bound(fx["lora_logits"]));
  };
  auto randomise_b = [](LlamaForCausalLMImpl& m) {
    torch::NoGradGuard ng;
    for (auto& l : m.lora_layers()) l->lora_B->weight.normal_(0, 0.3);
  };
  auto same = load_llama(root + "/model");
  LoraOptions lo;  // the fixture's r 4, alpha 8 on all seven projections
  lo.r = 4;
  lo.alpha = 8;
  lo.dropout = 0.0;
  same->add_lora(lo);
  randomise_b(*same);
  std::vector<const void*> before;
  for (auto& l : same->lora_layers()) before.push_back(l->lora_A->weight.unsafeGetTensorImpl());
  load_adapter(root + "/adapter", *same);
  std::vector<const void*> after;
  for (auto& l : same->lora_layers()) after.push_back(l->lora_A->weight.unsafeGetTensorImpl());
  EXPECT_EQ(before, after);
  expect_peft_logits(*same);

  auto other = load_llama(root + "/model");
  LoraOptions small;
  small.r = 2;
  small.alpha = 16;
  small.target_modules = {"q_proj", "v_proj"};
  other->add_lora(small);
  randomise_b(*other);
  other->merge_lora();  // the merged product must leave the base weight before the new adapter comes
  load_adapter(root + "/adapter", *other);
  EXPECT_EQ(other->lora.r, 4);
  EXPECT_EQ(other->lora_layers().size(), (size_t)(7 * other->config.num_hidden_layers));
  expect_peft_logits(*other);
}

TEST_P(HFParity, AdapterExportedBySbtrecLoadsInPeft) {
  auto m = load_llama(root + "/model");
  LoraOptions lo;
  lo.r = 3;
  lo.alpha = 6;
  lo.dropout = 0.0;
  lo.use_rslora = std::string(GetParam()) == "gqa";  // one case exports a rank-stabilised adapter to PEFT
  torch::manual_seed(5);  // A's Kaiming init and B below: the same adapter in every run
  m->add_lora(lo);
  {
    torch::NoGradGuard ng;
    for (auto& l : m->lora_layers()) l->lora_B->weight.normal_(0, 0.2);
  }
  m->eval();
  test::TempDir out;
  save_adapter(out / "adapter", *m, root + "/model");
  const std::string ids = "1 17 42 99 100 5 7 64";
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/make_parity_fixtures.py") +
                     " peft-logits --model " + root + "/model --adapter " + (out / "adapter") + " --ids \"" + ids +
                     "\" --out " + (out / "peft.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto want = safetensors::load(out / "peft.safetensors")["logits"];  // [T, V]
  torch::NoGradGuard ng;
  auto got = logits(*m, torch::tensor({1, 17, 42, 99, 100, 5, 7, 64}, torch::kInt64).unsqueeze(0), {}, {}).squeeze(0);
  // float32 sums in another order: bounded relative to the logits' scale (B ~ N(0, 0.2) makes them large).
  const double scale = std::max(1.0, want.abs().max().item<double>());
  EXPECT_LE((got - want).abs().max().item<double>() / scale, 2e-5) << "logit scale " << scale;
}

INSTANTIATE_TEST_SUITE_P(TinyLlamas, HFParity, ::testing::Values("mha", "gqa", "odd"));

TEST(HFParitySharded, ShardedCheckpointEqualsSingleFile) {
  if (!FixtureEnv::error.empty()) GTEST_FAIL() << FixtureEnv::error;
  auto single = load_llama(FixtureEnv::dir + "/gqa/model");
  auto sharded = load_llama(FixtureEnv::dir + "/gqa/model_sharded");
  auto ids = torch::tensor({1, 5, 9, 200, 33}, torch::kInt64).unsqueeze(0);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(logits(*single, ids, {}, {}), logits(*sharded, ids, {}, {})));
}

TEST(HFParityCli, LogitsCommandWritesTransformersLogits) {
  if (!FixtureEnv::error.empty()) GTEST_FAIL() << FixtureEnv::error;
  const std::string root = FixtureEnv::dir + "/mha";
  auto fx = safetensors::load(root + "/fixtures.safetensors");
  auto row = fx["input_ids"].select(0, 0);  // no padding in row 0
  std::string ids;
  for (int64_t i = 0; i < row.size(0); ++i) ids += (i ? " " : "") + std::to_string(row[i].item<int64_t>());
  test::TempDir out;
  auto r = test::run(test::bin("sbtrec-lm") + " logits --model " + root + "/model --ids \"" + ids + "\" --out " + (out / "l.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto got = safetensors::load(out / "l.safetensors")["logits"];  // [T, V]
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_LE((got - fx["logits"].select(0, 0)).abs().max().item<double>(), 1e-4);
  // Bad input: ids outside the vocabulary, a missing model directory.
  r = test::run(test::bin("sbtrec-lm") + " logits --model " + root + "/model --ids \"1 99999\" --out " + (out / "x.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("outside the vocabulary"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out / "x.safetensors"));
  r = test::run(test::bin("sbtrec-lm") + " logits --model /nonexistent --ids 1 --out " + (out / "x.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
}
