// A sequential-recommendation dataset under the LLaRA protocol: items with titles, and per split the
// samples (history of up to max_history item ids, oldest first, plus the next item as target).
// Item ids are internal, 0..num_items-1; id num_items is the padding id (LLaRA's convention).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sbtrec/data/options.h"

namespace sbtrec::data {

enum class Split { kTrain, kVal, kTest };
Split parse_split(const std::string& name);  // "train" | "val" | "test"; throws DataError
const char* split_name(Split s);
// Fixed codes of the splits in seeded streams (train 0, val 1, test 2): not the enum's values, so
// reordering Split can never change candidate sets or template choices.
uint64_t split_code(Split s);

struct Sample {
  int64_t user = 0;              // raw user id of the source dataset
  std::vector<int32_t> history;  // internal item ids, oldest first, no padding
  int32_t target = 0;
};

struct Dataset {
  std::string name;
  std::string root;
  int64_t num_items = 0;
  std::vector<std::string> titles;   // per internal id, normalised, UTF-8
  std::vector<int64_t> raw_item_ids; // internal id -> id in the source files
  // Item genres where the source has them (MovieLens: u.item's flags; sbtrec format: genres.tsv), else
  // both empty. Not part of signature(): no model reads them (eval.noise and the analyses do).
  std::vector<std::string> genre_names;
  std::vector<std::vector<int>> item_genres;  // per internal id: indices into genre_names
  // eval.noise (noise.h) applied to the val / test histories: what ("" = clean) and the clean data's
  // signature, which signature() keeps returning (a checkpoint trained on the clean data evaluates on
  // its noisy histories).
  std::string noise, clean_signature;
  std::vector<Sample> train, val, test;
  int64_t num_users = 0, num_interactions = 0;  // after the rating filter, before windowing

  const std::vector<Sample>& split(Split s) const;
  int64_t padding_id() const { return num_items; }
};

// Windowing shared by the loaders. every_position: one sample per position t >= 1 with the up to
// max_history items before it (training users); otherwise one sample whose target is the last item.
// Samples with fewer than min_history history items are dropped.
void append_window_samples(int64_t user, const std::vector<int32_t>& items, bool every_position,
                           const DataOptions& opt, std::vector<Sample>& out);

// Loads per `opt.format` (grouplens | sbtrec) from `opt.root`, applying the history window and the
// minimum-history filter. Throws DataError/IoError naming the file (and line) and what to do.
Dataset load_dataset(const DataOptions& opt);

// A SHA-256 of the dataset's contents as the trainers see them (items, titles, every split's samples):
// equal for equal data whatever its path; what a checkpoint records to refuse other data.
std::string signature(const Dataset& ds);

// Titles that occur for more than one item (case-insensitive): each group lists the item ids.
std::vector<std::vector<int32_t>> duplicate_titles(const Dataset& ds);

// Human-readable statistics (users, items, interactions, samples per split, duplicate titles).
std::string describe(const Dataset& ds);

struct CandidateSet;  // candidates.h

// Writes one line per sample: raw user id, TAB, raw history ids oldest first, TAB, raw target id;
// given `candidates` (one per sample of the split, from make_candidates), a fourth TAB column holds
// the candidates' raw ids in candidate order, space separated.
void export_samples(const Dataset& ds, Split split, const std::string& path,
                    const std::vector<CandidateSet>* candidates = nullptr);

}  // namespace sbtrec::data
