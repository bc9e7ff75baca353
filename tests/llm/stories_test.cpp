// Real pretrained weights: stories260K (llama2.c format) converted by scripts/convert_llama2c.py into a
// Hugging Face directory (q/k rows permuted from llama2.c's adjacent-pair rotation to rotate-half).
// sbtrec's greedy continuation from BOS equals transformers' token for token for 200 tokens, and
// sbtrec-lm prints the same text.
#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/tokenizer.h"

using namespace sbtrec;

TEST(Stories260K, GreedyFromBosMatchesTransformersFor200Tokens) {
  SBTREC_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  SBTREC_REQUIRE_SHARED("models/stories260K/tok512.bin");
  if (!std::filesystem::exists(SBTREC_PYTHON)) GTEST_SKIP() << "missing " << SBTREC_PYTHON << " (run ./scripts/setup.sh)";
  test::TempDir dir;
  const std::string py = std::string(SBTREC_PYTHON) + " ";
  auto r = test::run(py + test::source("scripts/convert_llama2c.py") + " --checkpoint " +
                     test::shared("models/stories260K/stories260K.bin") + " --tokenizer " +
                     test::shared("models/stories260K/tok512.bin") + " --out " + (dir / "hf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run(py + test::source("scripts/make_parity_fixtures.py") + " stories --model " + (dir / "hf") + " --out " +
                (dir / "ref.safetensors") + " --new-tokens 200");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<std::string, std::string> meta;
  auto want = safetensors::load(dir / "ref.safetensors", std::nullopt, &meta)["greedy_ids"];  // [1, 201]
  auto model = llm::load_llama(dir / "hf");
  llm::GenerationOptions o;
  o.max_new_tokens = 200;  // no EOS stop, as the reference
  auto got = llm::generate(*model, torch::tensor({model->config.bos_token_id}, torch::kInt64).unsqueeze(0), {}, o);
  ASSERT_EQ(got.sizes(), want.sizes());
  const int64_t first_diff = got.ne(want).nonzero().numel() ? got.ne(want).nonzero()[0][1].item<int64_t>() : -1;
  EXPECT_EQ(first_diff, -1) << "first differing position " << first_diff;
  // The text through the converted SentencePiece tokenizer, and sbtrec-lm's output for an empty prompt.
  llm::SentencePieceTokenizer tok(dir / "hf/tokenizer.model", llm::SentencePieceTokenizer::Mode::kSentencePiece);
  std::vector<int64_t> ids(got.data_ptr<int64_t>() + 1, got.data_ptr<int64_t>() + got.numel());
  const std::string text = tok.decode(ids);
  EXPECT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
  auto cli = test::run_stdout(test::bin("sbtrec-lm") + " generate --model " + (dir / "hf") + " --prompt \"\" --max-new-tokens 40");
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(cli.output.rfind("Once upon a time", 0), 0u) << cli.output;
}
