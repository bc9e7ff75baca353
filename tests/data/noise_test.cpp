// Noisy evaluation histories (data/noise.h): seeded per case, never an item of the history, the target
// or the candidates, off-genre items sharing no genre with the history's two dominant genres, at the end
// or anywhere, a history at the window cap keeping its length, the candidates and the signature those
// of the clean data; datasets without genres refused for off_genre. MovieLens genres from u.item and
// the sbtrec format's genres.tsv.
#include "sbtrec/data/noise.h"

#include <algorithm>
#include <set>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/data/dataset.h"

using namespace sbtrec;

namespace {
// 60 items in 6 genres (item i has genre i % 6, and every third item genre 5 too); 30 test cases.
data::Dataset genre_dataset() {
  data::Dataset ds;
  ds.name = "toy";
  ds.num_items = 60;
  for (int i = 0; i < 60; ++i) {
    ds.titles.push_back("item " + std::to_string(i));
    ds.raw_item_ids.push_back(i + 1);
    std::vector<int> g = {i % 6};
    if (i % 3 == 0 && i % 6 != 5) g.push_back(5);
    ds.item_genres.push_back(g);
  }
  ds.genre_names = {"a", "b", "c", "d", "e", "f"};
  for (int u = 0; u < 30; ++u) {
    data::Sample s;
    s.user = u;
    const int len = 3 + u % 8;  // 3..10
    for (int k = 0; k < len; ++k) s.history.push_back((u * 7 + k * 6) % 60);  // one genre mostly
    s.target = (u * 7 + 1) % 60;
    if (std::count(s.history.begin(), s.history.end(), s.target)) s.target = (s.target + 1) % 60;
    ds.test.push_back(s);
    ds.val.push_back(s);
  }
  ds.train = ds.test;
  return ds;
}
data::NoiseOptions noise(data::NoiseKind kind, int count, data::NoisePosition position, std::uint64_t seed = 2024) {
  data::NoiseOptions o;
  o.kind = kind;
  o.count = count;
  o.position = position;
  o.seed = seed;
  return o;
}
}  // namespace

TEST(Noise, InjectedItemsAreNewOffGenreAndSeeded) {
  const auto clean = genre_dataset();
  const auto cands = data::make_candidates(clean, data::Split::kTest, 5, 7);
  auto a = clean, b = clean, c = clean;
  const auto o = noise(data::NoiseKind::kOffGenre, 2, data::NoisePosition::kEnd);
  data::inject_noise(a, data::Split::kTest, cands, o, 10);
  data::inject_noise(b, data::Split::kTest, cands, o, 10);
  data::inject_noise(c, data::Split::kTest, cands, noise(data::NoiseKind::kOffGenre, 2, data::NoisePosition::kEnd, 5), 10);
  int differs = 0;
  for (size_t i = 0; i < clean.test.size(); ++i) {
    const auto& h0 = clean.test[i].history;
    const auto& h = a.test[i].history;
    EXPECT_EQ(h, b.test[i].history) << "the same seed gives the same noisy history";
    differs += h != c.test[i].history;
    // At the end; a history at the cap (10) keeps its length, its oldest items making room.
    ASSERT_EQ(h.size(), std::min<size_t>(h0.size() + 2, std::max<size_t>(h0.size(), 10))) << i;
    const std::vector<int32_t> kept(h.begin(), h.end() - 2);
    EXPECT_EQ(kept, std::vector<int32_t>(h0.end() - (ptrdiff_t)kept.size(), h0.end())) << i;
    const auto dominant = data::dominant_genres(clean, h0);
    ASSERT_FALSE(dominant.empty());
    EXPECT_LE(dominant.size(), 2u);
    for (auto it = h.end() - 2; it != h.end(); ++it) {
      const int32_t item = *it;
      EXPECT_EQ(std::count(h0.begin(), h0.end(), item), 0) << "never a history item";
      EXPECT_NE(item, clean.test[i].target);
      EXPECT_EQ(std::count(cands[i].items.begin(), cands[i].items.end(), item), 0) << "never a candidate";
      for (int g : clean.item_genres[(size_t)item])
        EXPECT_EQ(std::count(dominant.begin(), dominant.end(), g), 0) << "case " << i << " item " << item;
    }
    EXPECT_NE(h[h.size() - 1], h[h.size() - 2]) << "distinct items";
    // The targets, the val split and the training samples are untouched.
    EXPECT_EQ(a.test[i].target, clean.test[i].target);
    EXPECT_EQ(a.val[i].history, clean.val[i].history);
  }
  EXPECT_GT(differs, 0) << "another seed, other items";
  // The candidates drawn afterwards would differ (they avoid the history), so callers draw them on
  // the clean data; the checkpoint's view of the data, the signature, stays the clean one.
  EXPECT_EQ(data::signature(a), data::signature(clean));
  EXPECT_EQ(a.noise, "test: off_genre x 2 at end, seed 2024");
}

TEST(Noise, RandomPositionsAndRandomKind) {
  const auto clean = genre_dataset();
  const auto cands = data::make_candidates(clean, data::Split::kVal, 5, 7);
  auto a = clean;
  data::inject_noise(a, data::Split::kVal, cands, noise(data::NoiseKind::kRandom, 3, data::NoisePosition::kRandom), 20);
  int not_at_end = 0;
  for (size_t i = 0; i < clean.val.size(); ++i) {
    const auto& h0 = clean.val[i].history;
    const auto& h = a.val[i].history;
    ASSERT_EQ(h.size(), h0.size() + 3);
    // The clean items keep their order; the three others are new.
    std::vector<int32_t> clean_part, added;
    for (int32_t x : h) (std::count(h0.begin(), h0.end(), x) ? clean_part : added).push_back(x);
    EXPECT_EQ(clean_part, h0);
    EXPECT_EQ(added.size(), 3u);
    not_at_end += std::vector<int32_t>(h.end() - 3, h.end()) != added;
  }
  EXPECT_GT(not_at_end, 0) << "position random puts some noise before the end";
}

TEST(Noise, RefusalsNameWhatIsMissing) {
  auto ds = genre_dataset();
  const auto cands = data::make_candidates(ds, data::Split::kTest, 5, 7);
  auto none = ds;
  none.item_genres.clear();
  none.genre_names.clear();
  try {
    data::inject_noise(none, data::Split::kTest, cands, noise(data::NoiseKind::kOffGenre, 1, data::NoisePosition::kEnd), 10);
    FAIL() << "no genres accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dataset toy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("has no item genres"), std::string::npos) << e.what();
  }
  try {
    data::inject_noise(ds, data::Split::kTest, cands, noise(data::NoiseKind::kRandom, 57, data::NoisePosition::kEnd), 10);
    FAIL() << "more noise than items accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("test case 0: only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(data::inject_noise(ds, data::Split::kTrain, cands, noise(data::NoiseKind::kRandom, 1, data::NoisePosition::kEnd), 10),
               ConfigError);
}

TEST(Noise, GenresOfMovieLensAndOfTheSbtrecFormat) {
  test::TempDir dir;
  // The sbtrec format's optional genres.tsv (scripts/import_llara_data.py --tags).
  test::write_text(dir / "d/dataset.json", R"({"format": "sbtrec-dataset", "version": 1, "name": "toy", "num_items": 3})");
  test::write_text(dir / "d/items.tsv", "0\tA\n1\tB\n2\tC\n");
  for (const char* s : {"train", "val", "test"}) test::write_text(dir / ("d/" + std::string(s) + ".tsv"), "1\t0 1 2\t0\n");
  test::write_text(dir / "d/genres.tsv", "0\trock|pop\n2\tpop\n");
  DataOptions o;
  o.format = DataFormat::kSbtrec;
  o.root = dir / "d";
  o.min_history = 1;
  const auto ds = data::load_dataset(o);
  EXPECT_EQ(ds.genre_names, (std::vector<std::string>{"rock", "pop"}));
  EXPECT_EQ(ds.item_genres, (std::vector<std::vector<int>>{{0, 1}, {}, {1}}));
  EXPECT_EQ(data::dominant_genres(ds, {0, 2}), (std::vector<int>{1, 0}));

  // LastFM: LLaRA's splits imported with HetRec's tags as genres.
  if (std::filesystem::exists(test::shared("data/llara/lastfm/id2name.txt")) &&
      std::filesystem::exists(test::shared("data/hetrec2011-lastfm-2k/tags.dat"))) {
    const auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/import_llara_data.py") + " --src " +
                             test::shared("data/llara/lastfm") + " --out " + (dir / "lastfm") + " --tags " +
                             test::shared("data/hetrec2011-lastfm-2k"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    DataOptions l;
    l.format = DataFormat::kSbtrec;
    l.root = dir / "lastfm";
    const auto lastfm = data::load_dataset(l);
    EXPECT_EQ(lastfm.titles[3], "Fleetwood Mac");
    std::vector<std::string> g;
    for (int x : lastfm.item_genres[3]) g.push_back(lastfm.genre_names[(size_t)x]);
    EXPECT_EQ(g, (std::vector<std::string>{"classic rock", "70s", "rock"}));
  }
  if (!std::filesystem::exists(test::shared("data/ml-100k/u.item"))) GTEST_SKIP() << "missing " << test::shared("data/ml-100k");
  DataOptions m;
  m.root = test::shared("data/ml-100k");
  const auto ml = data::load_dataset(m);
  ASSERT_EQ(ml.genre_names.size(), 19u);
  EXPECT_EQ(ml.genre_names[15], "Sci-Fi");
  // Toy Story (1995): Animation, Children's, Comedy.
  std::vector<std::string> toy;
  for (int g : ml.item_genres[0]) toy.push_back(ml.genre_names[(size_t)g]);
  EXPECT_EQ(toy, (std::vector<std::string>{"Animation", "Children's", "Comedy"}));
}
