// See genre_purity.h.
#include "sbtrec/quantizer/genre_purity.h"

#include <cmath>
#include <map>
#include <numeric>
#include <unordered_map>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/data/noise.h"

namespace sbtrec::quantizer {
namespace {

constexpr int kShuffles = 20;

// purity of `groups` over the members listed in `who` (indices into genres).
double purity_of(const std::vector<int64_t>& groups, const std::vector<size_t>& who,
                 const std::vector<std::vector<int>>& genres) {
  std::unordered_map<int64_t, std::map<int, int64_t>> count;  // code -> genre -> members carrying it
  for (size_t k = 0; k < who.size(); ++k)
    for (const int g : genres[who[k]]) ++count[groups[k]][g];
  int64_t top = 0;
  for (const auto& [code, by_genre] : count) {
    int64_t best = 0;
    for (const auto& [g, n] : by_genre) best = std::max(best, n);
    top += best;
  }
  return who.empty() ? 0.0 : (double)top / (double)who.size();
}

}  // namespace

nlohmann::json Purity::to_json() const {
  return {{"purity", purity}, {"shuffled", shuffled_mean}, {"shuffled_sd", shuffled_sd}, {"members", members},
          {"codes", groups}};
}

Purity genre_purity(const std::vector<int64_t>& groups, const std::vector<std::vector<int>>& genres, int shuffles,
                    uint64_t seed) {
  std::vector<size_t> who;
  std::vector<int64_t> codes;
  for (size_t i = 0; i < groups.size(); ++i)
    if (!genres[i].empty()) who.push_back(i), codes.push_back(groups[i]);
  Purity p;
  p.members = (int64_t)who.size();
  std::vector<int64_t> distinct = codes;
  std::sort(distinct.begin(), distinct.end());
  p.groups = (int64_t)(std::unique(distinct.begin(), distinct.end()) - distinct.begin());
  p.purity = purity_of(codes, who, genres);
  std::vector<double> base;
  for (int s = 0; s < shuffles; ++s) {
    auto shuffled = codes;
    CounterStream rng(stream_key(seed, Purpose::kPurityShuffle, (uint64_t)s));
    shuffle(shuffled, rng);
    base.push_back(purity_of(shuffled, who, genres));
  }
  if (!base.empty()) {
    p.shuffled_mean = std::accumulate(base.begin(), base.end(), 0.0) / (double)base.size();
    double ss = 0;
    for (double b : base) ss += (b - p.shuffled_mean) * (b - p.shuffled_mean);
    p.shuffled_sd = base.size() > 1 ? std::sqrt(ss / (double)(base.size() - 1)) : 0.0;
  }
  return p;
}

nlohmann::json genre_purity_stats(const data::Dataset& ds, const torch::Tensor& item_codes,
                                  const torch::Tensor& train_user_codes, uint64_t seed) {
  if (ds.item_genres.empty()) return nullptr;
  nlohmann::json out = {{"genres", ds.genre_names.size()}, {"shuffles", kShuffles}};
  auto by_level = [&](const torch::Tensor& codes, const std::vector<std::vector<int>>& genres) {
    auto c = codes.to(torch::kInt64).contiguous();  // [M, L]
    auto a = c.accessor<int64_t, 2>();
    nlohmann::json levels = nlohmann::json::array();
    for (int64_t l = 0; l < c.size(1); ++l) {
      std::vector<int64_t> g((size_t)c.size(0));
      for (int64_t i = 0; i < c.size(0); ++i) g[(size_t)i] = a[i][l];
      auto j = genre_purity(g, genres, kShuffles, seed + (uint64_t)l).to_json();
      j["level"] = l + 1;
      levels.push_back(j);
    }
    return levels;
  };
  if (item_codes.defined()) {
    out["items"] = {{"levels", by_level(item_codes, ds.item_genres)}};
    // The full tuple as one code: its index in the tuples' sorted order.
    auto c = item_codes.to(torch::kInt64).contiguous();
    std::map<std::vector<int64_t>, int64_t> index;
    std::vector<int64_t> tuple((size_t)c.size(0));
    for (int64_t i = 0; i < c.size(0); ++i) {
      std::vector<int64_t> t(c[i].data_ptr<int64_t>(), c[i].data_ptr<int64_t>() + c.size(1));
      tuple[(size_t)i] = index.emplace(t, (int64_t)index.size()).first->second;
    }
    out["items"]["tuple"] = genre_purity(tuple, ds.item_genres, kShuffles, seed + 1000).to_json();
  }
  if (train_user_codes.defined() && train_user_codes.size(0) == (int64_t)ds.train.size()) {
    std::vector<std::vector<int>> dominant;  // each training sample's history's dominant genre
    for (const auto& s : ds.train) {
      const auto d = data::dominant_genres(ds, s.history);
      dominant.push_back(d.empty() ? std::vector<int>{} : std::vector<int>{d.front()});
    }
    out["user"] = {{"levels", by_level(train_user_codes, dominant)}, {"against", "the history's dominant genre"}};
  }
  return out;
}

}  // namespace sbtrec::quantizer
