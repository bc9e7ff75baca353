// Single-query attention for decoding (see decode_attention.h).
#include "sbtrec/nn/decode_attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "dot.h"
#include "sbtrec/common/cpu_clones.h"

namespace sbtrec::nn {
namespace {

constexpr int kLanes = 16;

// One (batch, head): scores over S keys, softmax, weighted sum of values into out[E].
SBTREC_CPU_CLONES
void one_head(const float* q, const float* k, int64_t k_row, const float* v, int64_t v_row, const bool* mask,
              int64_t mask_stride, int64_t S, int64_t E, float scale, float* scores, float* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < S; ++s) {
    if (mask && !mask[s * mask_stride]) {
      scores[s] = -std::numeric_limits<float>::infinity();
      continue;
    }
    const float d = dot<kLanes>(q, k + s * k_row, E);
    scores[s] = d * scale;
    top = std::max(top, scores[s]);
  }
  for (int64_t e = 0; e < E; ++e) out[e] = 0.f;
  float total = 0.f;
  for (int64_t s = 0; s < S; ++s) {
    if (scores[s] == -std::numeric_limits<float>::infinity()) continue;
    const float p = std::exp(scores[s] - top);
    total += p;
    const float* vr = v + s * v_row;
    for (int64_t e = 0; e < E; ++e) out[e] += p * vr[e];
  }
  const float inv = total > 0.f ? 1.f / total : std::numeric_limits<float>::quiet_NaN();  // nothing visible: NaN, as SDPA
  for (int64_t e = 0; e < E; ++e) out[e] *= inv;
}

}  // namespace

bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask) {
  auto f32_cpu = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 4; };
  if (!f32_cpu(q) || !f32_cpu(k) || !f32_cpu(v) || q.size(2) != 1) return false;
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) return false;
  const int64_t B = q.size(0), H = q.size(1), E = q.size(3), Hkv = k.size(1), S = k.size(2);
  if (k.sizes() != v.sizes() || k.size(0) != B || k.size(3) != E || Hkv == 0 || H % Hkv || S == 0) return false;
  if (q.stride(3) != 1 || k.stride(3) != 1 || v.stride(3) != 1) return false;
  if (mask.defined() && (mask.scalar_type() != torch::kBool || mask.dim() != 4 || mask.size(0) != B || mask.size(1) != 1 ||
                         mask.size(2) != 1 || mask.size(3) != S || !mask.device().is_cpu()))
    return false;
  return true;
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale) {
  TORCH_CHECK(decode_attention_applies(q, k, v, mask), "decode_attention: unsupported inputs q ", q.sizes(), ", k ",
              k.sizes(), ", v ", v.sizes());
  const int64_t B = q.size(0), H = q.size(1), E = q.size(3), Hkv = k.size(1), S = k.size(2), group = H / Hkv;
  auto out = torch::empty({B, H, 1, E}, q.options());  // [B, H, 1, E]
  const float* pq = q.data_ptr<float>();
  const float* pk = k.data_ptr<float>();
  const float* pv = v.data_ptr<float>();
  const bool* pm = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  float* po = out.data_ptr<float>();
  at::parallel_for(0, B * H, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(S);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, kvh = h / group;
      one_head(pq + b * q.stride(0) + h * q.stride(1), pk + b * k.stride(0) + kvh * k.stride(1), k.stride(2),
               pv + b * v.stride(0) + kvh * v.stride(1), v.stride(2), pm ? pm + b * mask.stride(0) : nullptr,
               pm ? mask.stride(3) : 0, S, E, (float)scale, scores.data(), po + bh * E);
    }
  });
  return out;
}

}  // namespace sbtrec::nn
