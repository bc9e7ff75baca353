// End to end: SASRec trained on the real MovieLens-100K (LLaRA protocol) must learn: validation
// HR@1 over 20 candidates > 0.25 (chance is 0.05), loss falls, and the best checkpoint reloads.
#include <fstream>

#include "../test_util.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/train/encoder_trainer.h"

using namespace sbtrec;

TEST(MovieLensE2E, SASRecLearns) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  Config cfg = load_config(test::source("configs/movielens/sasrec.yaml"),
                           {"data.root=" + test::shared("data/ml-100k"), "output_dir=" + (dir / "run"), "seed=1"});
  const auto ds = data::load_dataset(cfg.data);
  train::Run run(cfg, false);
  const auto r = train::train_encoder(cfg, ds, run);
  EXPECT_GT(r.best_val.hr1.value(), 0.25) << "best epoch " << r.best_epoch;
  EXPECT_EQ(r.best_val.n, 94);
  EXPECT_EQ(r.test.n, 95);
  EXPECT_GT(r.test.hr1.value(), 0.15);
  // metrics.jsonl: training loss falls from the first to the best epoch.
  std::ifstream in(dir / "run/metrics.jsonl");
  double first_loss = -1, last_loss = -1;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["split"] == "train") {
      if (first_loss < 0) first_loss = j["loss"];
      last_loss = j["loss"];
    }
  }
  EXPECT_LT(last_loss, first_loss * 0.9);
  EXPECT_TRUE(std::filesystem::exists(dir / "run/checkpoint/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "run/config.yaml"));
  EXPECT_TRUE(std::filesystem::exists(dir / "run/results.json"));
}
