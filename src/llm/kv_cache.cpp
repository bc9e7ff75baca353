// KV cache (see kv_cache.h).
#include "sbtrec/llm/kv_cache.h"

namespace sbtrec::llm {

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t T = k.size(2), need = length_ + T;
  auto& K = k_[layer];
  auto& V = v_[layer];
  if (!K.defined() || K.size(2) < need) {
    const int64_t cap = std::max({need, capacity_, K.defined() ? 2 * K.size(2) : int64_t(0)});
    auto grow = [&](torch::Tensor& buf, const torch::Tensor& like) {
      auto fresh = torch::empty({like.size(0), like.size(1), cap, like.size(3)}, like.options());  // [B, Hkv, cap, E]
      if (buf.defined() && length_ > 0) fresh.narrow(2, 0, length_).copy_(buf.narrow(2, 0, length_));
      buf = fresh;
    };
    grow(K, k);
    grow(V, v);
  }
  K.narrow(2, length_, T).copy_(k);
  V.narrow(2, length_, T).copy_(v);
  return {K.narrow(2, 0, need), V.narrow(2, 0, need)};  // [B, Hkv, S, E]
}

void KVCache::reorder(const torch::Tensor& index) {
  for (auto* bufs : {&k_, &v_})
    for (auto& t : *bufs)
      if (t.defined()) t = t.index_select(0, index.to(t.device()));
}

KVCache KVCache::expanded(int64_t batch, int64_t capacity) const {
  KVCache out((int64_t)k_.size(), capacity);
  out.length_ = length_;
  auto grow = [&](const torch::Tensor& one) {  // [1, Hkv, cap, E] -> [batch, Hkv, capacity, E]
    TORCH_CHECK(one.size(0) == 1, "KVCache::expanded: the cache holds ", one.size(0), " rows, not 1");
    auto t = torch::empty({batch, one.size(1), std::max(capacity, length_), one.size(3)}, one.options());
    t.narrow(2, 0, length_).copy_(one.narrow(2, 0, length_).expand({batch, -1, -1, -1}));
    return t;
  };
  for (size_t l = 0; l < k_.size(); ++l) {
    if (!k_[l].defined()) continue;
    out.k_[l] = grow(k_[l]);
    out.v_[l] = grow(v_[l]);
  }
  return out;
}

}  // namespace sbtrec::llm
