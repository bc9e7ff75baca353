// Fused rotary position embedding (see rotary.h).
#include "sbtrec/nn/rotary.h"

#include <ATen/Parallel.h>

namespace sbtrec::nn {
namespace {

// For every (b, t) row and head: out = x * c + rotate_half(x) * s when `inverse` is false, and the
// transposed map g * c + rotate_half^T(g * s) (the gradient) when it is true. All tensors are
// contiguous: x/out [R, H, E], c/s [R, E] with R = B * T.
void rotate(const float* x, const float* c, const float* s, float* out, int64_t R, int64_t H, int64_t E, bool inverse) {
  const int64_t half = E / 2;
  at::parallel_for(0, R, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* cr = c + r * E;
      const float* sr = s + r * E;
      for (int64_t h = 0; h < H; ++h) {
        const float* xr = x + (r * H + h) * E;
        float* o = out + (r * H + h) * E;
        if (!inverse) {
          for (int64_t i = 0; i < half; ++i) o[i] = xr[i] * cr[i] + (-xr[i + half]) * sr[i];
          for (int64_t i = half; i < E; ++i) o[i] = xr[i] * cr[i] + xr[i - half] * sr[i];
        } else {
          for (int64_t i = 0; i < half; ++i) o[i] = xr[i] * cr[i] + xr[i + half] * sr[i + half];
          for (int64_t i = half; i < E; ++i) o[i] = xr[i] * cr[i] - xr[i - half] * sr[i - half];
        }
      }
    }
  });
}

torch::Tensor composite(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto halves = x.chunk(2, -1);
  auto rotated = torch::cat({-halves[1], halves[0]}, -1);                 // [B, T, H, E]
  return x * cos.unsqueeze(2) + rotated * sin.unsqueeze(2);               // [B, T, H, E]
}

struct RotaryFn : torch::autograd::Function<RotaryFn> {
  static torch::Tensor run(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool inverse) {
    auto xc = x.contiguous();
    auto out = torch::empty_like(xc);  // [B, T, H, E]
    const int64_t E = xc.size(3), H = xc.size(2), R = xc.size(0) * xc.size(1);
    rotate(xc.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), out.data_ptr<float>(), R, H, E, inverse);
    return out;
  }
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                                                torch::Tensor cos, torch::Tensor sin) {
    ctx->save_for_backward({cos, sin});
    return {run(x, cos, sin, false)};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    return {run(grad[0], saved[0], saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) &&
                  cos.size(1) == x.size(1) && cos.size(2) == x.size(3) && x.size(3) % 2 == 0,
              "apply_rotary: x [B, T, H, E] with even E and cos/sin [B, T, E] expected, got ", x.sizes(), " and ",
              cos.sizes());
  const bool fused = x.device().is_cpu() && x.scalar_type() == torch::kFloat32 &&
                     cos.scalar_type() == torch::kFloat32 && sin.scalar_type() == torch::kFloat32 &&
                     !cos.requires_grad() && !sin.requires_grad();
  if (!fused) return composite(x, cos, sin);
  return RotaryFn::apply(x, cos.contiguous(), sin.contiguous())[0];
}

}  // namespace sbtrec::nn
