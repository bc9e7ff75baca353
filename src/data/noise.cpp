// See noise.h.
#include "sbtrec/data/noise.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/candidates.h"

namespace sbtrec::data {

std::string NoiseOptions::describe() const {
  if (!enabled()) return "off";
  return fmt::format("{} x {} at {}, seed {}", config::choice_name(noise_kinds(), kind), count,
                     config::choice_name(noise_positions(), position), seed);
}

std::vector<int> dominant_genres(const Dataset& ds, const std::vector<int32_t>& history) {
  if (ds.item_genres.empty()) return {};
  std::vector<int> count(ds.genre_names.size(), 0);
  for (const int32_t i : history)
    for (const int g : ds.item_genres[(size_t)i]) ++count[(size_t)g];
  std::vector<int> order(count.size());
  for (size_t g = 0; g < order.size(); ++g) order[g] = (int)g;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return count[(size_t)a] > count[(size_t)b]; });
  std::vector<int> top;
  for (const int g : order)
    if (count[(size_t)g] > 0 && top.size() < 2) top.push_back(g);
  return top;
}

void inject_noise(Dataset& ds, Split split, const std::vector<CandidateSet>& candidates, const NoiseOptions& o,
                  int max_history) {
  if (!o.enabled()) return;
  if (split == Split::kTrain) throw ConfigError("eval.noise applies to evaluated splits (val, test), not to training");
  if (o.kind == NoiseKind::kOffGenre && ds.item_genres.empty())
    throw ConfigError("eval.noise.kind off_genre: dataset " + ds.name + " (" + ds.root +
                      ") has no item genres (MovieLens: u.item's genre flags; sbtrec format: genres.tsv, written by "
                      "scripts/import_llara_data.py --tags); use eval.noise.kind random");
  auto& samples = split == Split::kVal ? ds.val : ds.test;
  if (candidates.size() != samples.size())
    throw DataError("eval.noise: " + std::to_string(candidates.size()) + " candidate sets for " +
                    std::to_string(samples.size()) + " " + split_name(split) + " cases");
  const Purpose purpose = split == Split::kVal ? Purpose::kNoiseVal : Purpose::kNoiseTest;
  if (ds.clean_signature.empty()) ds.clean_signature = signature(ds);
  ds.noise += (ds.noise.empty() ? "" : "; ") + std::string(split_name(split)) + ": " + o.describe();
  for (size_t i = 0; i < samples.size(); ++i) {
    auto& s = samples[i];
    std::unordered_set<int32_t> taken(s.history.begin(), s.history.end());
    taken.insert(s.target);
    taken.insert(candidates[i].items.begin(), candidates[i].items.end());
    const auto dominant = o.kind == NoiseKind::kOffGenre ? dominant_genres(ds, s.history) : std::vector<int>{};
    std::vector<int32_t> pool;  // the items that qualify, in id order
    for (int32_t item = 0; item < (int32_t)ds.num_items; ++item) {
      if (taken.count(item)) continue;
      if (o.kind == NoiseKind::kOffGenre) {
        const auto& g = ds.item_genres[(size_t)item];
        if (g.empty() || std::any_of(g.begin(), g.end(), [&](int x) {
              return std::find(dominant.begin(), dominant.end(), x) != dominant.end();
            }))
          continue;  // an item without genres is not known to be off-genre
      }
      pool.push_back(item);
    }
    if ((int)pool.size() < o.count)
      throw DataError(fmt::format("eval.noise: {} case {}: only {} items qualify as {} noise, {} asked (eval.noise.count)",
                                  split_name(split), i, pool.size(), config::choice_name(noise_kinds(), o.kind), o.count));
    CounterStream rng(stream_key(o.seed, purpose, i));
    std::vector<int32_t> history = s.history;
    std::vector<bool> noise(history.size(), false);
    for (int k = 0; k < o.count; ++k) {
      // A partial Fisher-Yates: the k-th draw from the items not drawn yet.
      const size_t j = (size_t)k + (size_t)rng.below(pool.size() - (size_t)k);
      std::swap(pool[(size_t)k], pool[j]);
      const size_t at = o.position == NoisePosition::kEnd ? history.size() : (size_t)rng.below(history.size() + 1);
      history.insert(history.begin() + (ptrdiff_t)at, pool[(size_t)k]);
      noise.insert(noise.begin() + (ptrdiff_t)at, true);
    }
    // At the window cap the history keeps its length: the oldest clean items make room.
    const size_t limit = std::max(s.history.size(), std::min(history.size(), (size_t)max_history));
    for (size_t k = 0; history.size() > limit && k < history.size();) {
      if (noise[k]) {
        ++k;
        continue;
      }
      history.erase(history.begin() + (ptrdiff_t)k);
      noise.erase(noise.begin() + (ptrdiff_t)k);
    }
    s.history = std::move(history);
  }
}

}  // namespace sbtrec::data
