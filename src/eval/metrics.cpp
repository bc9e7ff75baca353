// Recommendation metrics (see metrics.h).
#include "sbtrec/eval/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "sbtrec/common/error.h"

namespace sbtrec::eval {

namespace {
// Every optional metric by its JSON name: the one list get, to_json and from_json read.
const std::pair<const char*, std::optional<double> Metrics::*> kFields[] = {
    {"hr@1", &Metrics::hr1}, {"valid_ratio", &Metrics::valid_ratio}, {"hr@10", &Metrics::hr10},
    {"ndcg@10", &Metrics::ndcg10}, {"hr@5", &Metrics::hr5}, {"ndcg@5", &Metrics::ndcg5}};
}  // namespace

std::optional<double> Metrics::get(const std::string& name) const {
  for (const auto& [key, field] : kFields)
    if (name == key) return this->*field;
  return std::nullopt;
}

nlohmann::json case_record(const data::Dataset& ds, data::Split split, int64_t index, const data::CandidateSet& cs,
                           const std::string& source) {
  const auto& sample = ds.split(split)[(size_t)index];
  auto raw = [&](const std::vector<int32_t>& items) {  // item ids as in the dataset's own files
    std::vector<int64_t> out;
    for (int32_t item : items) out.push_back(ds.raw_item_ids[(size_t)item]);
    return out;
  };
  auto titles = [&](const std::vector<int32_t>& items) {
    std::vector<std::string> out;
    for (int32_t item : items) out.push_back(ds.titles[(size_t)item]);
    return out;
  };
  nlohmann::json j = {{"user", sample.user},
                      {"candidates", raw(cs.items)},
                      {"candidate_titles", titles(cs.items)},
                      {"target", ds.raw_item_ids[(size_t)sample.target]},
                      {"target_title", ds.titles[(size_t)sample.target]},
                      {"case", index},
                      {"history", raw(sample.history)},
                      {"history_titles", titles(sample.history)},
                      {"split", data::split_name(split)},
                      {"source", source}};
  if (!ds.noise.empty()) j["noise"] = ds.noise;
  return j;
}

nlohmann::json Metrics::to_json() const {
  nlohmann::json j = {{"n", n}};
  for (const auto& [key, field] : kFields)
    if ((this->*field).has_value()) j[key] = *(this->*field);
  return j;
}

Metrics Metrics::from_json(const nlohmann::json& j) {
  Metrics m;
  m.n = j.value("n", (int64_t)0);
  for (const auto& [key, field] : kFields)
    if (j.contains(key) && j[key].is_number()) m.*field = j[key].get<double>();
  return m;
}

void MetricsAccumulator::add_candidate_case(bool hit, bool valid_output) {
  ++n;
  hits1 += hit && valid_output;
  valid += valid_output;
}

void MetricsAccumulator::add_full_rank(int64_t rank) {
  ++ranked;
  if (rank < 10) {
    hits10 += 1;
    ndcg10 += 1.0 / std::log2((double)rank + 2.0);
  }
}

void MetricsAccumulator::add_candidate_rank(int64_t rank) {
  add_candidate_case(rank == 0, true);
  ++candidate_ranked;
  if (rank < 5) {
    hits5 += 1;
    ndcg5 += 1.0 / std::log2((double)rank + 2.0);
  }
}

Metrics MetricsAccumulator::finalize() const {
  Metrics m;
  m.n = std::max(n, ranked);
  if (n > 0) {
    m.hr1 = (double)hits1 / n;
    m.valid_ratio = (double)valid / n;
  }
  if (candidate_ranked > 0) {
    m.hr5 = hits5 / candidate_ranked;
    m.ndcg5 = ndcg5 / candidate_ranked;
  }
  if (ranked > 0) {
    m.hr10 = hits10 / ranked;
    m.ndcg10 = ndcg10 / ranked;
  }
  return m;
}

int64_t check_candidates(const std::vector<data::Sample>& samples, const std::vector<data::CandidateSet>& candidates,
                         int64_t num_items, const std::string& split) {
  if (candidates.size() != samples.size())
    throw DataError(split + ": " + std::to_string(candidates.size()) + " candidate sets for " +
                    std::to_string(samples.size()) + " samples (make them with data::make_candidates for this split)");
  const int64_t C = candidates.empty() ? 0 : (int64_t)candidates[0].items.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    const std::string where = split + " sample " + std::to_string(i) + ": ";
    if ((int64_t)c.items.size() != C)
      throw DataError(where + "candidate set of " + std::to_string(c.items.size()) + " items, but the first has " +
                      std::to_string(C) + " (every case must have the same number of candidates)");
    if (c.target_index < 0 || c.target_index >= (int)C || c.items[(size_t)c.target_index] != samples[i].target)
      throw DataError(where + "the target item is not at target_index " + std::to_string(c.target_index) +
                      " of its candidate set");
    for (int32_t item : c.items)
      if (item < 0 || item >= num_items)
        throw DataError(where + "candidate item id " + std::to_string(item) + " is outside [0, " +
                        std::to_string(num_items) + ")");
  }
  return C;
}

std::string format_table(const std::string& model, const std::string& split, const Metrics& m) {
  auto cell = [](const std::optional<double>& v, int width) {
    return v ? fmt::format("{:>{}.4f}", *v, width) : fmt::format("{:>{}}", "-", width);
  };
  // HR@5 / NDCG@5 over the candidates appear only when measured (likelihood evaluation).
  const bool ranked = m.hr5 || m.ndcg5;
  return fmt::format("{:<10} {:<6} {:>6} {:>7} {:>11} {:>7} {:>8}", "model", "split", "n", "HR@1", "ValidRatio", "HR@10",
                     "NDCG@10") +
         (ranked ? fmt::format(" {:>7} {:>7}", "HR@5", "NDCG@5") : "") + "\n" +
         fmt::format("{:<10} {:<6} {:>6} {} {} {} {}", model, split, m.n, cell(m.hr1, 7), cell(m.valid_ratio, 11),
                     cell(m.hr10, 7), cell(m.ndcg10, 8)) +
         (ranked ? " " + cell(m.hr5, 7) + " " + cell(m.ndcg5, 7) : "") + "\n";
}

}  // namespace sbtrec::eval
