// Byte-pair merging by rank, shared by the SentencePiece (tokenizer.cpp) and byte-level
// (bpe_tokenizer.cpp) tokenizers: the one loop both transformers back ends run, written once.
#pragma once
#include <cstdint>
#include <functional>
#include <queue>
#include <tuple>
#include <vector>

namespace sbtrec::llm::detail {

inline uint64_t bpe_pair_key(int32_t left, int32_t right) { return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right; }

// Repeatedly merges the adjacent pair of lowest rank (leftmost first) in `symbols` and appends the
// resulting ids to `out`; a heap and a linked list keep long words O(n log n). `merges` maps
// bpe_pair_key(left, right) to a value with .rank (lower merges first) and .result (the merged id).
template <class MergeTable>
void bpe_merge(const std::vector<int32_t>& symbols, const MergeTable& merges, std::vector<int64_t>& out) {
  const int n = (int)symbols.size();
  if (n <= 1) {
    out.insert(out.end(), symbols.begin(), symbols.end());
    return;
  }
  std::vector<int32_t> id(symbols), prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  using Item = std::tuple<int32_t, int32_t, int32_t, int32_t>;  // rank, position, left id, right id
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  auto push = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    auto it = merges.find(bpe_pair_key(id[i], id[next[i]]));
    if (it != merges.end()) heap.emplace(it->second.rank, i, id[i], id[next[i]]);
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    auto [rank, i, l, r] = heap.top();
    heap.pop();
    if (!alive[i] || next[i] < 0 || id[i] != l || id[next[i]] != r) continue;  // stale entry
    const int j = next[i];
    id[i] = merges.at(bpe_pair_key(l, r)).result;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace sbtrec::llm::detail
