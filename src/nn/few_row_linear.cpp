// Few-row linear layer for decoding (see few_row_linear.h).
#include "sbtrec/nn/few_row_linear.h"

#include <ATen/Parallel.h>

#include "dot.h"
#include "sbtrec/common/cpu_clones.h"

namespace sbtrec::nn {
namespace {

constexpr int kLanes = 32;  // independent partial sums: two AVX-512 or four AVX2 FMA chains

// y[m, o] = x[m, :] . w[o, :] for o in [o_begin, o_end), all m < M. Row o of w is read from memory
// once; the other M - 1 dot products re-read it from L1.
SBTREC_CPU_CLONES
void rows(const float* x, const float* w, float* y, int64_t M, int64_t I, int64_t O, int64_t o_begin,
          int64_t o_end) {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* wr = w + o * I;
    for (int64_t m = 0; m < M; ++m) {
      const float s = dot<kLanes>(wr, x + m * I, I);
      y[m * O + o] = s;
    }
  }
}

}  // namespace

namespace {

bool supported(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || weight.scalar_type() != torch::kFloat32 ||
      !weight.device().is_cpu() || weight.dim() != 2 || !weight.is_contiguous() || x.dim() < 1 ||
      x.size(-1) != weight.size(1) || x.numel() == 0)
    return false;
  return !(torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()));
}

}  // namespace

bool few_row_linear_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  return supported(x, weight) && x.numel() / x.size(-1) <= kFewRows;
}

torch::Tensor few_row_linear(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(supported(x, weight), "few_row_linear: needs CPU float32 x [..., I] and contiguous weight [O, I] "
              "without gradients; got ", x.sizes(), " and ", weight.sizes());
  const int64_t I = weight.size(1), O = weight.size(0), M = x.numel() / I;
  auto xc = x.reshape({M, I}).contiguous();  // [M, I]
  auto y = torch::empty({M, O}, x.options());  // [M, O]
  const float* px = xc.data_ptr<float>();
  const float* pw = weight.data_ptr<float>();
  float* py = y.data_ptr<float>();
  // ~64 KB of W per task: enough work to amortise a task, small enough to balance two threads.
  const int64_t grain = std::max<int64_t>(1, 16384 / I);
  at::parallel_for(0, O, grain, [&](int64_t begin, int64_t end) { rows(px, pw, py, M, I, O, begin, end); });
  auto sizes = x.sizes().vec();
  sizes.back() = O;
  return y.view(sizes);  // [..., O]
}

}  // namespace sbtrec::nn
