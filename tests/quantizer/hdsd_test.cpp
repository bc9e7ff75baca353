// HDSD over an encoder: the two kinds of behaviour vectors, per-kind codebooks as `inputs` selects,
// and the files sbtrec-quantize writes, read back (and refused with the key named when wrong).
#include <gtest/gtest.h>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/quantizer/genre_purity.h"
#include "sbtrec/quantizer/hdsd.h"
#include "sbtrec/config/config.h"

using namespace sbtrec;
using namespace sbtrec::quantizer;

namespace {

// A random SASRec and a small dataset whose training histories it can encode.
struct Fixture {
  data::Dataset ds;
  encoder::Encoder enc;
  Fixture(int64_t items = 60, int64_t samples = 90) {
    ds.name = "tiny";
    ds.num_items = items;
    for (int64_t i = 0; i < items; ++i) ds.titles.push_back("Item " + std::to_string(i));
    torch::manual_seed(3);
    for (int64_t s = 0; s < samples; ++s) {
      data::Sample x;
      x.user = s;
      const int64_t len = 3 + s % 6;
      for (int64_t t = 0; t < len; ++t) x.history.push_back((int32_t)((s * 7 + t * 13) % items));
      x.target = (int32_t)((s * 5) % items);
      ds.train.push_back(x);
    }
    EncoderOptions eo;
    eo.hidden_size = 16;
    enc = encoder::make_encoder(eo, items);
  }
};

QuantizerOptions small(QuantizerInputs inputs) {
  QuantizerOptions o;
  o.levels = 2;
  o.codes = 8;
  o.inputs = inputs;
  o.kmeans_iterations = 5;
  return o;
}

// The CheckpointError `fn` throws, or "no CheckpointError".
std::string checkpoint_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const CheckpointError& e) {
    return std::string(e.what());
  }
  return std::string("no CheckpointError");
}

}  // namespace

TEST(Hdsd, BehaviourVectorsAreTheItemRowsAndTheHistoryRepresentations) {
  Fixture f;
  auto items = item_vectors(*f.enc);
  EXPECT_EQ(items.sizes(), (std::vector<int64_t>{60, 16}));  // padding row N dropped
  EXPECT_TRUE(torch::equal(items, f.enc->item_embedding_table().slice(0, 0, 60)));
  f.enc->train();
  auto users = user_vectors(*f.enc, f.ds.train, 10, 32);  // three batches
  EXPECT_TRUE(f.enc->is_training());                      // mode restored
  EXPECT_FALSE(users.requires_grad());
  f.enc->eval();
  torch::NoGradGuard ng;
  auto t = data::to_tensors(f.ds.train, 60, 10);
  EXPECT_TRUE(torch::allclose(users, f.enc->sequence_representation(t.seq, t.lengths), 1e-6, 1e-6));
  const auto s = input_stats(users);
  EXPECT_EQ(s.vectors, 90);
  EXPECT_NEAR(s.mean_norm, users.norm(2, 1).mean().item<double>(), 1e-5);
}

TEST(Hdsd, InputsSelectTheKindsAndEachHasItsOwnCodebooks) {
  Fixture f;
  Hdsd both(small(QuantizerInputs::kBoth), 16, 16), items(small(QuantizerInputs::kItems), 16, 16),
      user(small(QuantizerInputs::kUser), 16, 16);
  EXPECT_TRUE(both->items && both->user);
  EXPECT_TRUE(items->items && !items->user);
  EXPECT_TRUE(!user->items && user->user);
  std::vector<std::string> names;
  for (const auto& p : both->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"items.codebooks", "user.codebooks"}));
  const auto fit = fit_hdsd(small(QuantizerInputs::kBoth), 5, *f.enc, f.ds, 10, 64);
  EXPECT_FALSE(torch::equal(fit.hdsd->items->codebooks, fit.hdsd->user->codebooks));
  EXPECT_EQ(fit.item_codes.sizes(), (std::vector<int64_t>{60, 2}));
  EXPECT_EQ(fit.train_user_codes.sizes(), (std::vector<int64_t>{90, 2}));
  EXPECT_TRUE(torch::equal(fit.item_codes, fit.hdsd->items->encode(item_vectors(*f.enc))));
  for (const char* kind : {"items", "user"}) {
    ASSERT_TRUE(fit.stats.contains(kind)) << kind;
    EXPECT_EQ(fit.stats[kind]["quantizer"]["levels"].size(), 2u);
    EXPECT_TRUE(fit.stats[kind]["input"].contains("mean_norm"));
  }
  // Every item listed as sharing a tuple does share it, with its title beside it.
  int64_t listed = 0;
  for (const auto& g : fit.stats["items"]["shared_tuples"]) {
    ASSERT_GE(g["items"].size(), 2u);
    for (size_t i = 0; i < g["items"].size(); ++i) {
      const int64_t item = g["items"][i];
      EXPECT_EQ(g["titles"][i], f.ds.titles[(size_t)item]);
      for (int64_t l = 0; l < 2; ++l) EXPECT_EQ(fit.item_codes[item][l].item<int64_t>(), g["codes"][(size_t)l].get<int64_t>());
    }
    listed += (int64_t)g["items"].size();
  }
  EXPECT_EQ(listed, fit.stats["items"]["items_sharing_a_tuple"].get<int64_t>());
  // Same seed, same codebooks; the user kind is fitted with its own stream.
  const auto again = fit_hdsd(small(QuantizerInputs::kBoth), 5, *f.enc, f.ds, 10, 64);
  EXPECT_TRUE(torch::equal(again.hdsd->items->codebooks, fit.hdsd->items->codebooks));
  EXPECT_TRUE(torch::equal(again.hdsd->user->codebooks, fit.hdsd->user->codebooks));
}

// The SBT-Rec session computes the training split's user vectors for its prompts and hands them to
// fit_hdsd, which fits on exactly those (not a second pass over the encoder): the same vectors give the
// same codebooks; vectors twice as long give codebooks twice as large.
TEST(Hdsd, FitsTheUserVectorsItIsGiven) {
  Fixture f;
  const auto users = user_vectors(*f.enc, f.ds.train, 10, 64);  // [S, Z]
  const auto own = fit_hdsd(small(QuantizerInputs::kUser), 5, *f.enc, f.ds, 10, 64);
  const auto given = fit_hdsd(small(QuantizerInputs::kUser), 5, *f.enc, f.ds, 10, 64, users);
  EXPECT_TRUE(torch::equal(given.hdsd->user->codebooks, own.hdsd->user->codebooks));
  const auto doubled = fit_hdsd(small(QuantizerInputs::kUser), 5, *f.enc, f.ds, 10, 64, users * 2.0);
  EXPECT_TRUE(torch::allclose(doubled.hdsd->user->codebooks, own.hdsd->user->codebooks * 2.0, 1e-4, 1e-5));
}

TEST(Hdsd, SavedFilesReadBackAndWrongOnesAreRefused) {
  Fixture f;
  test::TempDir dir;
  const auto fit = fit_hdsd(small(QuantizerInputs::kBoth), 1, *f.enc, f.ds, 10, 64);
  save_hdsd(dir / "q", fit, "quantizer:\n  levels: 2\n");
  for (const char* file : {"codebooks.safetensors", "codes.safetensors", "stats.json", "config.yaml"})
    EXPECT_TRUE(std::filesystem::exists(dir / (std::string("q/") + file))) << file;
  auto books = safetensors::load(dir / "q/codebooks.safetensors");
  EXPECT_EQ(books.at("codebooks").sizes(), (std::vector<int64_t>{2, 8, 16}));
  EXPECT_EQ(books.at("user_codebooks").scalar_type(), torch::kFloat32);
  auto codes = safetensors::load(dir / "q/codes.safetensors");
  EXPECT_TRUE(torch::equal(codes.at("item_codes"), fit.item_codes));
  EXPECT_EQ(codes.at("item_codes").scalar_type(), torch::kInt64);
  EXPECT_EQ(nlohmann::json::parse(test::read_text(dir / "q/stats.json")), fit.stats);

  Hdsd loaded(small(QuantizerInputs::kBoth), 16, 16);
  load_hdsd_codebooks(dir / "q", *loaded);
  EXPECT_TRUE(torch::equal(loaded->items->codebooks, fit.hdsd->items->codebooks));
  EXPECT_TRUE(torch::equal(loaded->user->codebooks, fit.hdsd->user->codebooks));

  QuantizerOptions three = small(QuantizerInputs::kBoth);
  three.levels = 3;
  Hdsd deeper(three, 16, 16);
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "q", *deeper); }).find("key 'codebooks'"), std::string::npos);
  const auto items_only = fit_hdsd(small(QuantizerInputs::kItems), 1, *f.enc, f.ds, 10, 64);
  save_hdsd(dir / "items", items_only, "");
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "items", *loaded); }).find("'user_codebooks'"), std::string::npos);
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "nowhere", *loaded); }).find("sbtrec-quantize"), std::string::npos);
}

TEST(Hdsd, CollisionsIndexGivesEveryItemItsOwnTupleAndTheFilesCarryIt) {
  Fixture f;
  auto o = small(QuantizerInputs::kBoth);
  o.codes = 4;  // 16 tuples for 60 items: collisions are certain
  const auto keep = fit_hdsd(o, 1, *f.enc, f.ds, 10, 64);
  EXPECT_GT(keep.stats["items"]["quantizer"]["collisions"].get<int64_t>(), 0);
  o.collisions = Collisions::kIndex;
  const auto fit = fit_hdsd(o, 1, *f.enc, f.ds, 10, 64);
  // The same k-means; the codes gain the rank column, and every item's tuple is unique.
  EXPECT_TRUE(torch::equal(fit.hdsd->items->codebooks, keep.hdsd->items->codebooks));
  ASSERT_EQ(fit.item_codes.sizes(), (std::vector<int64_t>{60, 3}));
  EXPECT_TRUE(torch::equal(fit.item_codes.narrow(1, 0, 2), keep.item_codes));
  EXPECT_TRUE(torch::equal(fit.item_codes.select(1, 2), collision_ranks(keep.item_codes)));
  EXPECT_EQ(std::get<0>(torch::unique_dim(fit.item_codes, 0)).size(0), 60);
  const auto largest = keep.stats["items"]["quantizer"]["largest_shared_tuple"].get<int64_t>();
  EXPECT_EQ(fit.stats["items"]["index"]["codes"].get<int64_t>(), largest);
  EXPECT_EQ(fit.stats["items"]["index"]["collisions"].get<int64_t>(), 0);
  EXPECT_EQ(fit.hdsd->items->index_codebook.size(0), largest);
  EXPECT_FALSE(fit.hdsd->user->has_index());  // user tokens: one per history, nothing to tell apart
  EXPECT_EQ(fit.stats["collisions"], "index");
  // Written and read back; a config that disagrees is refused with the key named.
  test::TempDir dir;
  save_hdsd(dir / "q", fit, "");
  EXPECT_EQ(safetensors::load(dir / "q/codes.safetensors").at("item_codes").size(1), 3);
  Hdsd loaded(o, 16, 16);
  load_hdsd_codebooks(dir / "q", *loaded);
  EXPECT_TRUE(torch::equal(loaded->items->index_codebook, fit.hdsd->items->index_codebook));
  auto four = small(QuantizerInputs::kBoth);
  four.codes = 4;
  Hdsd plain4(four, 16, 16);
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "q", *plain4); }).find("quantizer.collisions"), std::string::npos);
  save_hdsd(dir / "keep", keep, "");
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "keep", *loaded); }).find("quantizer.collisions"), std::string::npos);
  // quantizer.normalize is recorded too.
  auto unit = four;
  unit.normalize = true;
  Hdsd normalized(unit, 16, 16);
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "keep", *normalized); }).find("quantizer.normalize"), std::string::npos);
  const auto fit_unit = fit_hdsd(unit, 1, *f.enc, f.ds, 10, 64);
  EXPECT_EQ(fit_unit.stats["normalize"], true);
  save_hdsd(dir / "unit", fit_unit, "");
  load_hdsd_codebooks(dir / "unit", *normalized);
  EXPECT_NE(checkpoint_error([&] { load_hdsd_codebooks(dir / "unit", *plain4); }).find("quantizer.normalize"), std::string::npos);
}

TEST(Hdsd, TooFewVectorsForTheCodesIsAConfigErrorNamingTheKind) {
  Fixture f(60, 5);
  try {
    fit_hdsd(small(QuantizerInputs::kBoth), 1, *f.enc, f.ds, 10, 64);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("quantizer user"), std::string::npos) << e.what();
  }
}

TEST(Hdsd, ConfigSectionReadsAndChecksTheQuantizerKeys) {
  const Config c = parse_config("quantizer:\n  codes: 64\n  dead_codes:\n    enabled: true\n", "test.yaml",
                                {"quantizer.levels=1", "quantizer.inputs=user"});
  EXPECT_EQ(c.quantizer.levels, 1);
  EXPECT_EQ(c.quantizer.codes, 64);
  EXPECT_EQ(c.quantizer.inputs, QuantizerInputs::kUser);
  EXPECT_TRUE(c.quantizer.dead_codes.enabled);
  EXPECT_EQ(kmeans_seed(c.quantizer, c.seed), c.seed);  // -1 follows the run's seed
  EXPECT_NE(config_to_yaml(c).find("inputs: user"), std::string::npos);
  const Config d;
  EXPECT_EQ(d.quantizer.levels, 3);
  EXPECT_EQ(d.quantizer.codes, 128);
  EXPECT_EQ(d.quantizer.inputs, QuantizerInputs::kBoth);
  EXPECT_EQ(d.quantizer.codebook_loss, 0.0);
  EXPECT_EQ(d.quantizer.commitment_loss, 0.0);
  EXPECT_FALSE(d.quantizer.dead_codes.enabled);
  for (const char* bad : {"quantizer.inputs=history", "quantizer.codes=0", "quantizer.commitment_loss=-1"}) {
    try {
      parse_config("", "test.yaml", {bad});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(bad).substr(0, std::string(bad).find('='))), std::string::npos)
          << e.what();
    }
  }
}

// Genre purity (quantizer/genre_purity.h): codes that follow the genres are pure (1) and far above
// their shuffled baseline; codes drawn at random sit at it; members without genres are left out; the
// baseline repeats for a seed.
TEST(GenrePurity, PureCodesBeatTheirShuffledBaseline) {
  std::vector<int64_t> codes;
  std::vector<std::vector<int>> genres;
  for (int i = 0; i < 600; ++i) {
    codes.push_back(i % 6);
    genres.push_back({i % 6, 6 + i % 2});  // genre i % 6 follows the code; 6 / 7 do not
  }
  genres.push_back({});  // no genres: left out
  codes.push_back(5);
  const auto p = quantizer::genre_purity(codes, genres, 20, 3);
  EXPECT_DOUBLE_EQ(p.purity, 1.0);
  EXPECT_EQ(p.members, 600);
  EXPECT_EQ(p.groups, 6);
  EXPECT_LT(p.shuffled_mean, 0.65);  // genre 6 or 7 covers about half of any code
  EXPECT_GT(p.shuffled_mean, 0.45);
  EXPECT_GT(p.shuffled_sd, 0.0);
  const auto again = quantizer::genre_purity(codes, genres, 20, 3);
  EXPECT_EQ(again.shuffled_mean, p.shuffled_mean);
  // Hand-computed: codes {0: genres a, a, b}, {1: b} -> (2 + 1) / 4.
  EXPECT_DOUBLE_EQ(quantizer::genre_purity({0, 0, 0, 1}, {{0}, {0}, {1}, {1}}, 0, 1).purity, 0.75);
}
