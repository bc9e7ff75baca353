// Padded sample tensors (see batch.h).
#include "sbtrec/data/batch.h"

namespace sbtrec::data {

SampleTensors to_tensors(const std::vector<Sample>& samples, int64_t num_items, int max_len) {
  const int64_t S = (int64_t)samples.size();
  auto seq = torch::full({S, max_len}, num_items, torch::kInt64);  // [S, T]
  auto lengths = torch::empty({S}, torch::kInt64);                // [S]
  auto target = torch::empty({S}, torch::kInt64);                 // [S]
  auto* sp = seq.data_ptr<int64_t>();
  auto* lp = lengths.data_ptr<int64_t>();
  auto* tp = target.data_ptr<int64_t>();
  for (int64_t i = 0; i < S; ++i) {
    const auto& h = samples[i].history;
    const size_t keep = std::min(h.size(), (size_t)max_len);
    const size_t first = h.size() - keep;  // most recent items
    for (size_t k = 0; k < keep; ++k) sp[i * max_len + k] = h[first + k];
    lp[i] = std::max<int64_t>(1, (int64_t)keep);
    tp[i] = samples[i].target;
  }
  return {seq, lengths, target};
}

}  // namespace sbtrec::data
