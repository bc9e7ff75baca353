// sbtrec-quantize end to end on MovieLens-100K with LLaRA's pretrained SASRec: the files, keys and
// shapes it writes, codes that the saved codebooks reproduce, and bad input that leaves nothing behind.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/quantizer/hdsd.h"
#include "sbtrec/config/config.h"

using namespace sbtrec;

namespace {
std::string quantize_cmd() {
  return test::bin("sbtrec-quantize") + " --config " + test::source("configs/movielens/quantize.yaml") +
         " --set data.root=" + test::shared("data/ml-100k");
}
}  // namespace

TEST(QuantizeE2E, MovieLensWithLLaRASASRec) {
  SBTREC_REQUIRE_SHARED("models/llara-rec-models/movielens.pt");
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/import_llara_checkpoint.py") +
                     " --checkpoint " + test::shared("models/llara-rec-models/movielens.pt") + " --out " + (dir / "ckpt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Fewer Lloyd iterations than the config's keep the test short on two cores; the shapes are the paper's.
  r = test::run(quantize_cmd() + " --encoder " + (dir / "ckpt") + " --out " + (dir / "q") +
                " --set quantizer.kmeans_iterations=5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("share a full code tuple"), std::string::npos) << r.output;

  auto books = safetensors::load(dir / "q/codebooks.safetensors");
  ASSERT_TRUE(books.count("codebooks") && books.count("user_codebooks"));
  EXPECT_EQ(books["codebooks"].sizes(), (std::vector<int64_t>{3, 128, 64}));
  EXPECT_EQ(books["user_codebooks"].sizes(), (std::vector<int64_t>{3, 128, 64}));
  EXPECT_EQ(books["codebooks"].scalar_type(), torch::kFloat32);
  auto codes = safetensors::load(dir / "q/codes.safetensors");
  ASSERT_TRUE(codes.count("item_codes"));
  EXPECT_EQ(codes["item_codes"].sizes(), (std::vector<int64_t>{1682, 3}));
  EXPECT_EQ(codes["item_codes"].scalar_type(), torch::kInt64);
  EXPECT_EQ(codes["train_user_codes"].sizes(), (std::vector<int64_t>{66127, 3}));

  // The saved codebooks, run forward again on the encoder's vectors, give the saved codes.
  const Config cfg = load_config(dir / "q/config.yaml");
  const auto ds = data::load_dataset(cfg.data);
  EncoderOptions eo;
  auto enc = encoder::load_encoder(dir / "ckpt", ds.num_items, &eo);
  quantizer::Hdsd hdsd(cfg.quantizer, 64, 64);
  quantizer::load_hdsd_codebooks(dir / "q", *hdsd);
  EXPECT_TRUE(torch::equal(hdsd->items->forward(quantizer::item_vectors(*enc)).indices, codes["item_codes"]));
  auto users = quantizer::user_vectors(*enc, ds.train, eo.max_len, 4096);
  EXPECT_TRUE(torch::equal(hdsd->user->encode(users), codes["train_user_codes"]));

  const auto stats = nlohmann::json::parse(test::read_text(dir / "q/stats.json"));
  for (const char* kind : {"items", "user"}) {
    const auto& q = stats[kind]["quantizer"];
    ASSERT_EQ(q["levels"].size(), 3u) << kind;
    // Each level lowers the error; k-means with 128 codes uses most of them.
    double previous = 1.0;
    for (const auto& l : q["levels"]) {
      EXPECT_LT(l["relative_error"].get<double>(), previous) << kind;
      previous = l["relative_error"];
      EXPECT_GT(l["usage"].get<double>(), 0.5) << kind;
    }
    EXPECT_GT(stats[kind]["input"]["mean_norm"].get<double>(), 0) << kind;
  }
  EXPECT_EQ(stats["items"]["quantizer"]["vectors"], 1682);
  EXPECT_EQ(stats["user"]["quantizer"]["vectors"], 66127);
  for (const auto& g : stats["items"]["shared_tuples"]) EXPECT_EQ(g["items"].size(), g["titles"].size());
  EXPECT_NE(test::read_text(dir / "q/config.yaml").find("kmeans_iterations: 5"), std::string::npos);
  // Genre purity (MovieLens's u.item genres): per level and for the full tuple of the item codes, per
  // level of the user codes, each beside its shuffled baseline.
  const auto& gp = stats["genre_purity"];
  ASSERT_EQ(gp["items"]["levels"].size(), 3u) << gp.dump();
  ASSERT_EQ(gp["user"]["levels"].size(), 3u);
  EXPECT_EQ(gp["items"]["tuple"]["members"], 1682);
  for (const char* kind : {"items", "user"})
    for (const auto& l : gp[kind]["levels"]) {
      EXPECT_GT(l["purity"].get<double>(), 0) << kind;
      EXPECT_LE(l["purity"].get<double>(), 1) << kind;
      EXPECT_GT(l["shuffled"].get<double>(), 0) << kind;
    }
  EXPECT_NE(r.output.find("genre purity"), std::string::npos) << r.output;

  // A used --out is refused (files untouched) unless --overwrite; --set reaches the quantizer.
  r = test::run(quantize_cmd() + " --encoder " + (dir / "ckpt") + " --out " + (dir / "q"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  r = test::run(quantize_cmd() + " --encoder " + (dir / "ckpt") + " --out " + (dir / "q") +
                " --overwrite --set quantizer.levels=1 --set quantizer.inputs=items --set quantizer.kmeans_iterations=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  books = safetensors::load(dir / "q/codebooks.safetensors");
  EXPECT_EQ(books["codebooks"].sizes(), (std::vector<int64_t>{1, 128, 64}));
  EXPECT_EQ(books.count("user_codebooks"), 0u);
}

TEST(QuantizeE2E, BadInputExitsNonZeroAndWritesNothing) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  test::TempDir dir;
  auto r = test::run(quantize_cmd() + " --encoder " + (dir / "no-such-encoder") + " --out " + (dir / "q"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no-such-encoder"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "q"));
  // An encoder directory whose weights are not a safetensors file.
  test::write_text(dir / "bad/model.safetensors", "not a safetensors file");
  test::write_text(dir / "bad/config.yaml", "encoder:\n  type: sasrec\n");
  r = test::run(quantize_cmd() + " --encoder " + (dir / "bad") + " --out " + (dir / "q"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "q"));
  r = test::run(quantize_cmd() + " --encoder " + (dir / "bad") + " --out " + (dir / "q") + " --set quantizer.levels=0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("quantizer.levels"), std::string::npos) << r.output;
}
