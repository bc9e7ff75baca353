// Parity on the real SmolLM2-135M-Instruct weights (the GGUF that scripts/setup.sh installs) with
// transformers + PEFT loading the same file (scripts/make_smollm_fixtures.py): float32 logits over a
// 64-token input (max abs diff <= 1e-4), greedy continuations of 64 tokens for three chat prompts
// (identical ids), and a LoRA adapter (r 8, all seven projections) whose loss and A/B gradients agree
// within 1e-4 relative, through the logits loss and through the chunked training loss.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/chat_format.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/options.h"
#include "sbtrec/llm/tokenizer.h"

using namespace sbtrec;
using namespace sbtrec::llm;

namespace {

class SmolFixture : public ::testing::Environment {
 public:
  static std::string dir, error, model;
  void SetUp() override {
    model = default_model_path();
    if (model.empty() || !std::filesystem::exists(model)) {
      error = "missing the default model '" + model + "' (run ./scripts/setup.sh)";
      return;
    }
    const std::string script = test::source("scripts/make_smollm_fixtures.py");
    const std::string tok = test::shared("models/llama2-tokenizer/tokenizer.model");
    const bool have_tok = std::filesystem::exists(tok);
    const std::string inputs = test::read_text(script) + test::read_text(test::source("scripts/requirements-parity.txt")) +
                               model + std::to_string(std::filesystem::file_size(model)) + (have_tok ? tok : "");
    dir = test::cached_fixture("smollm", inputs,
                               std::string(SBTREC_PYTHON) + " " + script + " --gguf " + model +
                                   (have_tok ? " --llama2-tokenizer " + tok : ""),
                               &error);
  }
};
std::string SmolFixture::dir, SmolFixture::error, SmolFixture::model;
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new SmolFixture);

#define SMOL_REQUIRE()                                                         \
  do {                                                                         \
    if (SmolFixture::model.empty() || !std::filesystem::exists(SmolFixture::model)) \
      GTEST_SKIP() << SmolFixture::error;                                      \
    if (!SmolFixture::error.empty()) GTEST_FAIL() << SmolFixture::error;        \
  } while (0)

std::map<std::string, torch::Tensor> fixtures() { return safetensors::load(SmolFixture::dir + "/fixtures.safetensors"); }

}  // namespace

TEST(SmolLM2Parity, Float32LogitsMatchTransformers) {
  SMOL_REQUIRE();
  auto fx = fixtures();
  auto m = load_llama(SmolFixture::model, torch::kFloat32);
  EXPECT_EQ(m->config.num_hidden_layers, 30);
  EXPECT_EQ(m->config.num_key_value_heads, 3);
  EXPECT_TRUE(m->config.tie_word_embeddings);
  torch::NoGradGuard ng;
  ForwardInputs in;
  in.input_ids = fx["input_ids"];
  ASSERT_EQ(in.input_ids.size(1), 64);
  const double top = fx["logits"].abs().max().item<double>();
  // llm.cpu_gemm aten multiplies with transformers' own library (MKL); onednn (the default) sums the same
  // float32 products in another order, which 30 layers carry to a few 1e-6 of the largest logit.
  for (const bool onednn : {false, true}) {
    m->set_onednn_gemm(onednn);
    auto l = m->forward(in).squeeze(0);  // [64, V]
    const double diff = (l - fx["logits"]).abs().max().item<double>();
    std::cout << "SmolLM2 logits (cpu_gemm " << (onednn ? "onednn" : "aten") << "): max abs diff " << diff
              << " (max |logit| " << top << ")\n";
    EXPECT_LE(diff, onednn ? 5e-6 * top : 1e-4);
    EXPECT_TRUE(torch::equal(l.argmax(-1), fx["logits"].argmax(-1)));
  }
}

// Decoded from the GGUF's Q4_1 / Q8_0 blocks (the default) and from the float32 weights alike.
TEST(SmolLM2Parity, GreedyContinuationsOfChatPromptsAreIdentical) {
  SMOL_REQUIRE();
  auto m = load_llama(SmolFixture::model, torch::kFloat32);
  const auto cases = nlohmann::json::parse(test::read_text(SmolFixture::dir + "/generation.json"));
  ASSERT_EQ(cases.size(), 3u);
  torch::NoGradGuard ng;
  for (const bool packed : {true, false}) {
  SCOPED_TRACE(packed ? "decoding from the quantized blocks" : "decoding from the float32 weights");
  if (!packed) EXPECT_EQ(drop_packed_weights(*m), 30 * 7 + 1);  // every projection and the tied lm_head
  for (const auto& c : cases) {
    const auto prompt = c["ids"].get<std::vector<int64_t>>();
    const auto want = c["new_ids"].get<std::vector<int64_t>>();
    GenerationOptions o;
    o.max_new_tokens = 64;
    o.eos_token_ids = m->config.eos_token_ids;
    auto input = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
    auto seq = generate(*m, input, {}, o);
    auto gen = seq.narrow(1, input.size(1), seq.size(1) - input.size(1)).squeeze(0).contiguous();
    std::vector<int64_t> got(gen.data_ptr<int64_t>(), gen.data_ptr<int64_t>() + gen.numel());
    EXPECT_EQ(got, want) << "prompt: " << c["prompt"].get<std::string>() << "\ntransformers: " << c["new_text"].get<std::string>();
    EXPECT_GE(want.size(), 8u);  // a real answer, not an immediate end of turn
  }
  }
}

// One decoding step's logits from the blocks against the float32 weights: same values up to rounding.
TEST(SmolLM2Parity, PackedDecodeStepMatchesFloat32Weights) {
  SMOL_REQUIRE();
  auto fx = fixtures();
  auto m = load_llama(SmolFixture::model, torch::kFloat32);
  torch::NoGradGuard ng;
  auto ids = fx["input_ids"].narrow(1, 0, 32);  // [1, 32]
  auto step = [&] {
    KVCache cache(m->config.num_hidden_layers, 64);
    ForwardInputs in;
    in.input_ids = ids.narrow(1, 0, 31);
    in.cache = &cache;
    m->forward(in);  // prefill: many rows, the GEMM path
    in.input_ids = ids.narrow(1, 31, 1);
    return m->forward(in).squeeze(0);  // [1, V]: one row, the few-row path
  };
  auto packed = step();
  // Added special tokens (behavioural slots) grow the tied lm_head: its old rows keep their blocks.
  m->add_tokens(3);
  ASSERT_TRUE(m->lm_head->packed && m->lm_head->packed->mirrors(m->lm_head->weight));
  auto grown = step();  // [1, V + 3]
  ASSERT_EQ(grown.size(1), packed.size(1) + 3);
  ASSERT_GT(drop_packed_weights(*m), 0);
  auto dense = step();
  const double diff = (packed - dense.narrow(1, 0, packed.size(1))).abs().max().item<double>();
  std::cout << "SmolLM2 decode step, blocks vs float32 weights: max abs logit diff " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
  EXPECT_LE((grown - dense).abs().max().item<double>(), 1e-4);
}

TEST(SmolLM2Parity, LoraLossAndGradientsMatchPeft) {
  SMOL_REQUIRE();
  auto fx = fixtures();
  for (const bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked training loss" : "loss from logits");
    auto m = load_llama(SmolFixture::model, torch::kFloat32);
    load_adapter(SmolFixture::dir + "/adapter", *m);
    EXPECT_EQ(m->lora.r, 8);
    EXPECT_EQ(m->lora_layers().size(), (size_t)(7 * 30));
    m->train();  // lora_dropout is 0: deterministic
    ForwardInputs in;
    in.input_ids = fx["lora_input_ids"];
    torch::Tensor loss;
    if (chunked) {
      nn::LinearCrossEntropyOptions o;
      o.chunk_rows = 16;  // several chunks
      loss = m->loss(in, fx["lora_labels"], o);
    } else {
      loss = LlamaForCausalLMImpl::causal_lm_loss(m->forward(in), fx["lora_labels"]);
    }
    const double want_loss = fx["lora_loss"].item<double>();
    EXPECT_LE(std::abs(loss.item<double>() - want_loss), 1e-4 * std::abs(want_loss)) << loss.item<double>() << " vs " << want_loss;
    loss.backward();
    int compared = 0;
    double worst = 0;
    for (auto& item : m->named_parameters()) {
      if (item.key().find(".lora_") == std::string::npos) continue;
      const std::string key = "grad.base_model.model." + item.key();
      ASSERT_TRUE(fx.count(key)) << key;
      const auto& want = fx[key];
      const double rel = (item.value().grad() - want).abs().max().item<double>() / want.abs().max().item<double>();
      worst = std::max(worst, rel);
      EXPECT_LE(rel, 1e-4) << key;
      ++compared;
    }
    EXPECT_EQ(compared, 2 * 7 * 30);
    std::cout << (chunked ? "chunked" : "logits") << " loss: LoRA gradients' worst relative max abs diff " << worst << "\n";
  }
}

// --chat: ChatML (SmolLM2's template, its default system message) and Llama-2-chat's [INST] format,
// text and ids against transformers' apply_chat_template (Llama-2 with the shared tokenizer.model).
TEST(SmolLM2Parity, ChatFormatsMatchApplyChatTemplate) {
  SMOL_REQUIRE();
  const auto t = resolve_chat_format(ChatFormat::kAuto, SmolFixture::model);
  EXPECT_EQ(t.format, ChatFormat::kChatML);
  EXPECT_EQ(t.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  auto tok = load_tokenizer(SmolFixture::model);
  const auto cases = nlohmann::json::parse(test::read_text(SmolFixture::dir + "/generation.json"));
  for (const auto& c : cases) {
    const std::string text = apply_chat_format(t, c["prompt"].get<std::string>());
    EXPECT_EQ(text, c["text"].get<std::string>());
    EXPECT_EQ(tok->encode(text, false), c["ids"].get<std::vector<int64_t>>());
  }
  EXPECT_EQ(apply_chat_format(t, "hi", std::string("Be brief.")),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  const std::string l2 = SmolFixture::dir + "/llama2_chat.json";
  if (!std::filesystem::exists(l2)) GTEST_SKIP() << "missing ../shared/models/llama2-tokenizer/tokenizer.model: Llama-2-chat case not run";
  SentencePieceTokenizer sp(test::shared("models/llama2-tokenizer/tokenizer.model"));
  const ChatTemplate llama2{ChatFormat::kLlama2Chat, ""};
  for (const auto& c : nlohmann::json::parse(test::read_text(l2))) {
    const auto sys = c["system"].is_null() ? std::nullopt : std::optional<std::string>(c["system"].get<std::string>());
    const std::string text = apply_chat_format(llama2, c["user"].get<std::string>(), sys);
    EXPECT_EQ(text, c["text"].get<std::string>());
    EXPECT_EQ(sp.encode(text, false), c["ids"].get<std::vector<int64_t>>()) << text;
  }
  EXPECT_EQ(resolve_chat_format(ChatFormat::kAuto, test::shared("models/llama2-tokenizer")).format, ChatFormat::kNone);
}
