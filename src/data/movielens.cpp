// MovieLens-100K loader under the LLaRA protocol, and the synthetic GroupLens-format generator.
#include "sbtrec/data/movielens.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/text_file.h"
#include "sbtrec/data/titles.h"

namespace sbtrec::data {
namespace {

const char* kDownloadHint =
    "MovieLens-100K comes from https://grouplens.org/datasets/movielens/100k/ (ml-100k.zip); unpack it to "
    "data/ml-100k/ or point data.root (or $SBTREC_DATA) at the folder holding u.data and u.item";

struct Rating {
  int64_t user;
  int32_t item;  // internal id
  int64_t ts;
  int64_t order; // line number: ties in time keep file order
};

// Python's int(f * n) for the cut points, robust to 0.8 + 0.1 != 0.9 in floating point.
int64_t cut_point(double fraction, int64_t n) { return (int64_t)std::floor(fraction * (double)n + 1e-9); }

// Genre names: u.genre ("name|index" lines) where it exists, else MovieLens-100K's 19 in flag order.
// Without any flag set the dataset has no genres.
void read_genre_names(const std::string& root, Dataset& ds) {
  int flags = 0;
  for (const auto& g : ds.item_genres)
    for (const int x : g) flags = std::max(flags, x + 1);
  if (flags == 0) {
    ds.item_genres.clear();
    return;
  }
  if (path_exists(root + "/u.genre")) {
    TextFile f(root + "/u.genre", kDownloadHint);
    std::string_view line;
    while (f.next(line)) {
      if (line.empty()) continue;
      auto fs = f.fields(line, '|', 2, false, "genre|index");
      const int64_t index = f.to_int(fs[1], "genre index");
      if (index != (int64_t)ds.genre_names.size()) f.fail("genre indices must run 0, 1, 2, ... in order");
      ds.genre_names.emplace_back(fs[0]);
    }
  } else {
    ds.genre_names = {"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                      "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                      "Romance", "Sci-Fi", "Thriller", "War", "Western"};
  }
  if ((int)ds.genre_names.size() < flags)
    throw DataError(root + "/u.item: " + std::to_string(flags) + " genre flags but " + std::to_string(ds.genre_names.size()) +
                    " genre names (u.genre)");
}

void read_items(const std::string& root, Dataset& ds) {
  TextFile f(root + "/u.item", kDownloadHint);
  std::string_view line;
  while (f.next(line)) {
    if (line.empty()) continue;
    auto fs = f.fields(line, '|', 5, true, "id|title|release date|video release date|IMDb URL|genres...");
    const int64_t id = f.to_int(fs[0], "movie id");
    if (id != (int64_t)ds.titles.size() + 1)
      f.fail("movie ids must run 1, 2, 3, ... in order; expected " + std::to_string(ds.titles.size() + 1) + ", found " +
             std::to_string(id));
    ds.titles.push_back(normalize_movielens_title(latin1_to_utf8(std::string(fs[1]))));
    ds.raw_item_ids.push_back(id);
    std::vector<int> genres;  // the flags after the URL, one per genre
    for (size_t k = 5; k < fs.size(); ++k)
      if (fs[k] == "1") genres.push_back((int)(k - 5));
    ds.item_genres.push_back(std::move(genres));
  }
  if (ds.titles.empty()) throw DataError(f.path() + ": no items (empty file?). " + kDownloadHint);
  ds.num_items = (int64_t)ds.titles.size();
  read_genre_names(root, ds);
}

std::vector<Rating> read_ratings(const std::string& root, const DataOptions& opt, int64_t num_items) {
  TextFile f(root + "/u.data", kDownloadHint);
  std::vector<Rating> out;
  std::string_view line;
  while (f.next(line)) {
    if (line.empty()) continue;
    auto fs = f.fields(line, '\t', 4, false, "user id<TAB>item id<TAB>rating<TAB>timestamp");
    const int64_t user = f.to_int(fs[0], "user id");
    const int64_t item = f.to_int(fs[1], "item id");
    const double rating = f.to_double(fs[2], "rating");
    const int64_t ts = f.to_int(fs[3], "timestamp");
    if (item < 1 || item > num_items)
      f.fail("item id " + std::to_string(item) + " is not in u.item (ids 1.." + std::to_string(num_items) + ")");
    if (rating >= opt.min_rating) out.push_back({user, (int32_t)(item - 1), ts, f.line_number()});
  }
  if (out.empty())
    throw DataError(f.path() + ": no ratings >= " + std::to_string(opt.min_rating) + " (empty file or wrong data.min_rating?)");
  return out;
}

}  // namespace

Dataset load_movielens(const DataOptions& opt) {
  Dataset ds;
  ds.name = "movielens";
  ds.root = opt.root;
  read_items(opt.root, ds);
  std::vector<Rating> ratings = read_ratings(opt.root, opt, ds.num_items);
  ds.num_interactions = (int64_t)ratings.size();

  // Chronological order per user, ties by file order.
  std::stable_sort(ratings.begin(), ratings.end(), [](const Rating& a, const Rating& b) {
    return a.user != b.user ? a.user < b.user : a.ts < b.ts;
  });
  struct UserSeq {
    int64_t user, first_ts;
    std::vector<int32_t> items;
  };
  std::vector<UserSeq> users;
  for (const auto& r : ratings) {
    if (users.empty() || users.back().user != r.user) users.push_back({r.user, r.ts, {}});
    users.back().items.push_back(r.item);
  }
  // Users ordered by their first kept rating, ties by user id.
  std::stable_sort(users.begin(), users.end(), [](const UserSeq& a, const UserSeq& b) {
    return a.first_ts != b.first_ts ? a.first_ts < b.first_ts : a.user < b.user;
  });
  const int64_t n = (int64_t)users.size();
  ds.num_users = n;
  const int64_t cut1 = cut_point(opt.train_fraction, n);
  const int64_t cut2 = cut_point(opt.train_fraction + opt.val_fraction, n);
  for (int64_t i = 0; i < n; ++i) {
    const auto& u = users[i];
    if (i < cut1) append_window_samples(u.user, u.items, true, opt, ds.train);
    else if (i < cut2) append_window_samples(u.user, u.items, false, opt, ds.val);
    else append_window_samples(u.user, u.items, false, opt, ds.test);
  }
  return ds;
}

SyntheticOptions random_title_defaults() {
  SyntheticOptions o;
  o.titles = SyntheticTitles::kRandom;
  o.num_users = 2000;
  o.num_items = 600;
  o.min_len = 10;
  o.max_len = 40;
  return o;
}

std::vector<std::string> random_titles(int n, uint64_t seed) {
  static const char* kOnsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "pl", "st", "th", "tr"};
  static const char* kVowels[] = {"a", "e", "i", "o", "u", "ai", "ou", "ea"};
  static const char* kCodas[] = {"", "", "", "n", "r", "s", "l", "x", "m"};
  std::mt19937_64 rng(seed);
  auto pick = [&](const auto& table) { return table[rng() % (sizeof(table) / sizeof(table[0]))]; };
  auto word = [&]() {
    std::string w;
    const int syllables = 2 + (int)(rng() % 2);
    for (int k = 0; k < syllables; ++k) w += std::string(pick(kOnsets)) + pick(kVowels);
    w += pick(kCodas);
    w[0] = (char)std::toupper((unsigned char)w[0]);
    return w;
  };
  auto lower = [](std::string s) {
    for (auto& c : s) c = (char)std::tolower((unsigned char)c);
    return s;
  };
  // The matcher names every candidate that is a substring of the output: no title may contain another.
  std::vector<std::string> titles, keys;
  while ((int)titles.size() < n) {
    const std::string t = word() + " " + word(), key = lower(t);
    bool clash = false;
    for (const auto& k : keys)
      if (k.find(key) != std::string::npos || key.find(k) != std::string::npos) {
        clash = true;
        break;
      }
    if (clash) continue;
    titles.push_back(t);
    keys.push_back(key);
  }
  return titles;
}

void write_synthetic_grouplens(const std::string& dir, const SyntheticOptions& opt) {
  const bool random = opt.titles == SyntheticTitles::kRandom;
  if (opt.num_users < 1 || opt.num_items < 2 || opt.min_len < 1 || opt.max_len < opt.min_len)
    throw ConfigError("sbtrec-data synth: needs at least 1 user, 2 items and 1 <= min length <= max length");
  if (random && (opt.ring_size < 2 || opt.num_items % opt.ring_size != 0))
    throw ConfigError("sbtrec-data synth: --items (" + std::to_string(opt.num_items) + ") must be a multiple of --ring-size (" +
                      std::to_string(opt.ring_size) + "), which must be at least 2");
  make_dirs(dir);
  std::mt19937_64 rng(opt.seed);
  std::uniform_int_distribution<int> start(0, opt.num_items - 1), len(opt.min_len, opt.max_len), step(1, 3);
  std::uniform_real_distribution<double> u01(0, 1);
  // random titles: ring r, position p holds item ring_item[r * ring_size + p]; ring_pos inverts it.
  std::vector<int> ring_item(opt.num_items), ring_pos(opt.num_items);
  std::iota(ring_item.begin(), ring_item.end(), 0);
  if (random) std::shuffle(ring_item.begin(), ring_item.end(), rng);
  for (int k = 0; k < opt.num_items; ++k) ring_pos[ring_item[k]] = k;
  auto successor = [&](int item) {
    const int k = ring_pos[item], base = k - k % opt.ring_size;
    return ring_item[base + (k - base + 1) % opt.ring_size];
  };
  std::ostringstream data;
  int64_t ts = 874724710;
  for (int user = 1; user <= opt.num_users; ++user) {
    int item = start(rng);
    const int n = len(rng);
    int64_t t = ts + (int64_t)user * 37;
    for (int k = 0; k < n; ++k) {
      if (random) {
        // A low rating of a random item now and then: dropped by the >= 3 filter, outside the walk.
        if (u01(rng) < 0.05) data << user << '\t' << (start(rng) + 1) << "\t2\t" << t++ << '\n';
        data << user << '\t' << (item + 1) << "\t4\t" << t << '\n';
        item = u01(rng) < opt.follow ? successor(item) : start(rng);
      } else {
        // One ring of all items, mostly +1..+3 steps, sometimes a random jump; a few low ratings
        // (dropped by the >= 3 filter, so the kept walk skips them) keep the rating filter exercised.
        const int rating = u01(rng) < 0.1 ? 2 : 4;
        data << user << '\t' << (item + 1) << '\t' << rating << '\t' << t << '\n';
        item = u01(rng) < 0.9 ? (item + step(rng)) % opt.num_items : start(rng);
      }
      t += 1 + (int64_t)(u01(rng) * 1000);
    }
  }
  atomic_write_string(dir + "/u.data", data.str());
  const auto names = random ? random_titles(opt.num_items, opt.seed ^ 0x7171u) : std::vector<std::string>{};
  std::ostringstream items;
  for (int i = 1; i <= opt.num_items; ++i) {
    const std::string title = random ? names[(size_t)i - 1] + " (2000)" : "Synthetic Movie " + std::to_string(i) + " (2000)";
    items << i << "|" << title << "|01-Jan-2000||http://example.invalid/" << i << "|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n";
  }
  atomic_write_string(dir + "/u.item", items.str());
  atomic_write_string(dir + "/u.info", std::to_string(opt.num_users) + " users\n" + std::to_string(opt.num_items) +
                                           " items\n(synthetic: generated by sbtrec-data synth, " +
                                           (random ? "random titles, rings of " + std::to_string(opt.ring_size) : std::string("numbered titles")) + ")\n");
}

}  // namespace sbtrec::data
