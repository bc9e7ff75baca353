// Noisy evaluation histories (RQ5, issue 23): `eval.noise` injects `count` items into the history of
// every case of an evaluated split, the way the paper's case study describes noise (an outlier
// interaction, e.g. a children's cartoon at the end of a run of science fiction):
//   kind      random: any item; off_genre: an item that shares no genre with the history's dominant
//             genres (its two most frequent, ties to the lower genre id; MovieLens: u.item's flags,
//             LastFM: its artists' tags, genres.tsv); never an item of the history, the target or the
//             case's candidates.
//   position  end: after the last item (in the order drawn); random: each at a uniform position.
//   seed      the draw depends only on (seed, split, case index), like the candidate sets, so every
//             variant and model (SASRec and each LLM) sees the same noisy histories.
// The candidate sets are drawn on the clean histories first, so clean and noisy evaluations score the
// same candidates and pair case by case. A history at the window cap (data.max_history) keeps its
// length: its oldest clean items make room.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sbtrec/common/config_io.h"
#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

struct CandidateSet;  // candidates.h

enum class NoiseKind { kOff, kRandom, kOffGenre };
enum class NoisePosition { kEnd, kRandom };
inline const config::Choices<NoiseKind>& noise_kinds() {
  static const config::Choices<NoiseKind> c = {{"off", NoiseKind::kOff}, {"random", NoiseKind::kRandom},
                                               {"off_genre", NoiseKind::kOffGenre}};
  return c;
}
inline const config::Choices<NoisePosition>& noise_positions() {
  static const config::Choices<NoisePosition> c = {{"end", NoisePosition::kEnd}, {"random", NoisePosition::kRandom}};
  return c;
}

struct NoiseOptions {
  NoiseKind kind = NoiseKind::kOff;
  int count = 1;
  NoisePosition position = NoisePosition::kEnd;
  std::uint64_t seed = 2024;
  bool enabled() const { return kind != NoiseKind::kOff; }
  std::string describe() const;  // "off" or e.g. "off_genre x 1 at end, seed 2024"
};

inline void visit_fields(NoiseOptions& o, config::Visitor& v) {
  v.field("kind", o.kind, "off, random (any item) or off_genre (no genre shared with the history's two dominant genres)",
          noise_kinds());
  v.field("count", o.count, "items injected into each evaluated history", config::at_least(1));
  v.field("position", o.position, "end (after the last item) or random (each at a uniform position)", noise_positions());
  v.field("seed", o.seed, "seed of the injected items: the same noisy histories for every run and model");
}

// The history's dominant genres: its two most frequent (ties to the lower id); empty without genres.
std::vector<int> dominant_genres(const Dataset& ds, const std::vector<int32_t>& history);

// Injects the noise into every history of `split` in place; `candidates` are the split's candidate
// sets drawn on the clean histories. Throws DataError naming the split and case when too few items
// qualify, and ConfigError when off_genre is asked of a dataset without genres.
void inject_noise(Dataset& ds, Split split, const std::vector<CandidateSet>& candidates, const NoiseOptions& options,
                  int max_history);

}  // namespace sbtrec::data
