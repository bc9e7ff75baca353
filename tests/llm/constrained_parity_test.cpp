// Constrained decoding against transformers: greedy and beam search (3 beams) restricted per prompt to
// a set of answers through llm::TokenTrie equal transformers' generate(prefix_allowed_tokens_fn=...)
// with the same tree (scripts/reference_constrained.py), on a random tiny Llama and on SmolLM2-135M-
// Instruct, batched with left padding. Compared: each row's new tokens up to its first EOS.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/options.h"

using namespace sbtrec;
using namespace sbtrec::llm;

namespace {

class ConstrainedFixture : public ::testing::Environment {
 public:
  static std::string dir, error, model;
  void SetUp() override {
    model = default_model_path();
    const bool have_model = !model.empty() && std::filesystem::exists(model);
    const std::string script = test::source("scripts/reference_constrained.py");
    const std::string inputs = test::read_text(script) + test::read_text(test::source("scripts/requirements-parity.txt")) +
                               (have_model ? model + std::to_string(std::filesystem::file_size(model)) : "");
    dir = test::cached_fixture("constrained", inputs,
                               std::string(SBTREC_PYTHON) + " " + script + (have_model ? " --gguf " + model : ""), &error);
    if (!have_model) model.clear();
  }
};
std::string ConstrainedFixture::dir, ConstrainedFixture::error, ConstrainedFixture::model;
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new ConstrainedFixture);

std::vector<int64_t> until_eos(const std::vector<int64_t>& v, int64_t eos) {
  std::vector<int64_t> out;
  for (int64_t t : v) {
    out.push_back(t);
    if (t == eos) break;
  }
  return out;
}

// Runs every case of `file` through `m` constrained to its answers, greedy and beam, against the reference.
void check(LlamaForCausalLMImpl& m, const std::string& file) {
  const auto doc = nlohmann::json::parse(test::read_text(file));
  const int64_t eos = doc["eos"], pad = doc["pad"];
  const auto& cases = doc["cases"];
  const int64_t B = (int64_t)cases.size();
  int64_t P = 0;
  for (const auto& c : cases) P = std::max<int64_t>(P, (int64_t)c["input_ids"].size());
  auto input = torch::full({B, P}, pad, torch::kInt64), mask = torch::zeros({B, P}, torch::kInt64);
  std::vector<TokenTrie> tries;
  for (int64_t b = 0; b < B; ++b) {
    const auto ids = cases[(size_t)b]["input_ids"].get<std::vector<int64_t>>();
    const int64_t z = P - (int64_t)ids.size();
    for (size_t j = 0; j < ids.size(); ++j) input[b][z + (int64_t)j] = ids[j], mask[b][z + (int64_t)j] = 1;
    EXPECT_EQ(mask[b].sum().item<int64_t>(), (int64_t)ids.size());
    tries.emplace_back(cases[(size_t)b]["answers"].get<std::vector<std::vector<int64_t>>>(), std::vector<int64_t>{eos});
  }
  GenerationOptions o;
  o.max_new_tokens = doc["max_new_tokens"];
  o.eos_token_ids = {eos};
  o.pad_token_id = pad;
  o.allowed_tokens = [&](int64_t row, const std::vector<int64_t>& g) { return tries[(size_t)row].allowed(g); };
  for (const char* kind : {"greedy", "beam"}) {
    o.num_beams = std::string(kind) == "beam" ? doc["num_beams"].get<int64_t>() : 1;
    auto out = generate(m, input, mask, o).slice(1, P).contiguous();  // [B, N]
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> got(out[b].data_ptr<int64_t>(), out[b].data_ptr<int64_t>() + out.size(1));
      const auto want = doc[kind][(size_t)b].get<std::vector<int64_t>>();
      EXPECT_EQ(until_eos(got, eos), until_eos(want, eos)) << file << " " << kind << " row " << b;
      EXPECT_EQ(tries[(size_t)b].sequences_ending(got).size(), 1u) << kind << " row " << b;
    }
  }
}

}  // namespace

TEST(ConstrainedParity, TinyLlamaGreedyAndBeamEqualTransformersPrefixAllowedTokens) {
  if (ConstrainedFixture::dir.empty()) GTEST_FAIL() << ConstrainedFixture::error;
  auto m = load_llama(ConstrainedFixture::dir + "/tiny", torch::kFloat32);
  check(*m, ConstrainedFixture::dir + "/tiny.json");
}

TEST(ConstrainedParity, SmolLM2GreedyAndBeamEqualTransformersPrefixAllowedTokens) {
  if (ConstrainedFixture::model.empty()) GTEST_SKIP() << "missing the default model (run ./scripts/setup.sh)";
  if (ConstrainedFixture::dir.empty()) GTEST_FAIL() << ConstrainedFixture::error;
  auto m = load_llama(ConstrainedFixture::model, torch::kFloat32);
  check(*m, ConstrainedFixture::dir + "/smollm.json");
}
