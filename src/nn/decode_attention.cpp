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
constexpr int64_t kMaxGroup = 16;  // query heads per key/value head handled in one pass (more: several passes)

// The G query heads q[g] (g < G, G <= kMaxGroup) that share one key/value head: scores over S keys,
// softmax, weighted sum of values into out[g]. Each key and value row is read once for all G heads
// (grouped-query attention's point: SmolLM2 has 3 query heads per key/value head).
SBTREC_CPU_CLONES
void one_group(const float* const* q, int64_t G, const float* k, int64_t k_row, const float* v, int64_t v_row,
               const bool* mask, int64_t mask_stride, int64_t S, int64_t E, float scale, float* scores,
               float* const* out) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float top[kMaxGroup], total[kMaxGroup];
  for (int64_t g = 0; g < G; ++g) top[g] = -kInf, total[g] = 0.f;
  for (int64_t s = 0; s < S; ++s) {  // scores [G, S]
    const bool visible = !mask || mask[s * mask_stride];
    const float* kr = k + s * k_row;
    for (int64_t g = 0; g < G; ++g) {
      const float d = visible ? dot<kLanes>(q[g], kr, E) * scale : -kInf;
      scores[g * S + s] = d;
      top[g] = std::max(top[g], d);
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    float* sg = scores + g * S;
    for (int64_t s = 0; s < S; ++s) {
      const float p = sg[s] == -kInf ? 0.f : std::exp(sg[s] - top[g]);
      sg[s] = p;
      total[g] += p;
    }
    for (int64_t e = 0; e < E; ++e) out[g][e] = 0.f;
  }
  for (int64_t s = 0; s < S; ++s) {
    const float* vr = v + s * v_row;
    for (int64_t g = 0; g < G; ++g) {
      const float p = scores[g * S + s];
      if (p == 0.f) continue;
      float* o = out[g];
      for (int64_t e = 0; e < E; ++e) o[e] += p * vr[e];
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    const float inv = total[g] > 0.f ? 1.f / total[g] : std::numeric_limits<float>::quiet_NaN();  // nothing visible: NaN, as SDPA
    for (int64_t e = 0; e < E; ++e) out[g][e] *= inv;
  }
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
  // One task per (sequence, key/value head), its query heads in passes of at most kMaxGroup. A task
  // is 2 G S E multiply-adds; the threads fork only for at least ~32K of them each (a short cache, one
  // sequence: a fork would cost more than the work it splits).
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, 2 * group * S * E));
  at::parallel_for(0, B * Hkv, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores((size_t)(std::min(group, kMaxGroup) * S));  // [G, S]
    const float* qs[kMaxGroup];
    float* os[kMaxGroup];
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / Hkv, kvh = bk % Hkv;
      for (int64_t h0 = kvh * group; h0 < (kvh + 1) * group; h0 += kMaxGroup) {
        const int64_t G = std::min(kMaxGroup, (kvh + 1) * group - h0);
        for (int64_t g = 0; g < G; ++g) {
          qs[g] = pq + b * q.stride(0) + (h0 + g) * q.stride(1);
          os[g] = po + (b * H + h0 + g) * E;
        }
        one_group(qs, G, pk + b * k.stride(0) + kvh * k.stride(1), k.stride(2), pv + b * v.stride(0) + kvh * v.stride(1),
                  v.stride(2), pm ? pm + b * mask.stride(0) : nullptr, pm ? mask.stride(3) : 0, S, E, (float)scale,
                  scores.data(), os);
      }
    }
  });
  return out;
}

}  // namespace sbtrec::nn
