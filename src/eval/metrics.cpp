// Recommendation metrics (see metrics.h).
#include "sbtrec/eval/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "sbtrec/common/error.h"

namespace sbtrec::eval {

std::optional<double> Metrics::get(const std::string& name) const {
  if (name == "hr@1") return hr1;
  if (name == "valid_ratio") return valid_ratio;
  if (name == "hr@10") return hr10;
  if (name == "ndcg@10") return ndcg10;
  return std::nullopt;
}

nlohmann::json Metrics::to_json() const {
  nlohmann::json j = {{"n", n}};
  const std::pair<const char*, const std::optional<double>*> all[] = {
      {"hr@1", &hr1}, {"valid_ratio", &valid_ratio}, {"hr@10", &hr10}, {"ndcg@10", &ndcg10}};
  for (const auto& [name, v] : all)
    if (v->has_value()) j[name] = **v;
  return j;
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

Metrics MetricsAccumulator::finalize() const {
  Metrics m;
  m.n = std::max(n, ranked);
  if (n > 0) {
    m.hr1 = (double)hits1 / n;
    m.valid_ratio = (double)valid / n;
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
  return fmt::format("{:<10} {:<6} {:>6} {:>7} {:>11} {:>7} {:>8}\n", "model", "split", "n", "HR@1", "ValidRatio", "HR@10",
                     "NDCG@10") +
         fmt::format("{:<10} {:<6} {:>6} {} {} {} {}\n", model, split, m.n, cell(m.hr1, 7), cell(m.valid_ratio, 11),
                     cell(m.hr10, 7), cell(m.ndcg10, 8));
}

}  // namespace sbtrec::eval
