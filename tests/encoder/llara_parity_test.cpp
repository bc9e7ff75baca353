// Parity with the PyTorch reference: LLaRA's pretrained encoders, imported by
// scripts/import_llara_checkpoint.py, give the same logits in sbtrec as in scripts/reference_encoders.py
// (plain PyTorch), max abs difference <= 1e-4. Fixtures are made at test time from ../shared.
#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/encoder/encoder.h"

using namespace sbtrec;

class LLaRAParity : public ::testing::TestWithParam<const char*> {};

TEST_P(LLaRAParity, LogitsMatchPyTorchReference) {
  const std::string name = GetParam();
  SBTREC_REQUIRE_SHARED("models/llara-rec-models/" + name + ".pt");
  if (!std::filesystem::exists(SBTREC_PYTHON)) GTEST_SKIP() << "missing " << SBTREC_PYTHON << " (run ./scripts/setup.sh)";
  test::TempDir dir;
  const std::string py = std::string(SBTREC_PYTHON) + " ";
  auto r = test::run(py + test::source("scripts/import_llara_checkpoint.py") + " --checkpoint " +
                     test::shared("models/llara-rec-models/" + name + ".pt") + " --out " + (dir / "ckpt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run(py + test::source("scripts/reference_encoders.py") + " fixtures --checkpoint " + (dir / "ckpt") +
                " --out " + (dir / "fixture.safetensors") + " --batch 16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto fx = safetensors::load(dir / "fixture.safetensors");
  const int64_t num_items = fx["logits"].size(1);
  auto model = encoder::load_encoder(dir / "ckpt", num_items);
  model->eval();
  torch::NoGradGuard ng;
  auto logits = model->forward(fx["seq"], fx["lengths"]);
  const double diff = (logits - fx["logits"]).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4) << name;
  if (fx.count("state")) {
    auto z = model->sequence_representation(fx["seq"], fx["lengths"]);
    EXPECT_LE((z - fx["state"]).abs().max().item<double>(), 1e-4) << name;
  }
  RecordProperty("max_abs_diff", std::to_string(diff));
}

INSTANTIATE_TEST_SUITE_P(LLaRACheckpoints, LLaRAParity,
                         ::testing::Values("movielens", "GRU_movielens", "Caser_movielens", "lastfm", "steam"));
