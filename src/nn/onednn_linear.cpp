// oneDNN's matmul for inference GEMMs (see onednn_linear.h).
#include "sbtrec/nn/onednn_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

namespace sbtrec::nn {
namespace {

// mkldnn::_linear_pointwise(Tensor X, Tensor W, Tensor? B, str attr, Scalar?[] scalars, str? algorithm),
// registered by libtorch_cpu when it is built with oneDNN; called boxed so that its C++ signature
// (string_view spellings differ between releases) does not have to match.
const c10::OperatorHandle* linear_op() {
  static const c10::OperatorHandle* op = []() -> const c10::OperatorHandle* {
    if (!at::hasMKLDNN()) return nullptr;
    auto h = c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
    if (!h || !h->hasKernelForDispatchKey(c10::DispatchKey::CPU)) return nullptr;
    return new c10::OperatorHandle(*h);
  }();
  return op;
}

}  // namespace

bool onednn_linear_available() { return linear_op() != nullptr; }

bool onednn_linear_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto t = weight.scalar_type();
  return onednn_linear_available() && x.device().is_cpu() && weight.device().is_cpu() && weight.dim() == 2 &&
         x.dim() >= 1 && x.size(-1) == weight.size(1) && x.scalar_type() == t &&
         (t == torch::kFloat32 || t == torch::kBFloat16) &&
         (!torch::GradMode::is_enabled() || (!x.requires_grad() && !weight.requires_grad()));
}

torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(onednn_linear_applies(x, weight), "onednn_linear: needs oneDNN and CPU float32/bfloat16 x [..., I] and "
              "weight [O, I] of one dtype without gradients; got ", x.sizes(), " ", x.scalar_type(), " and ",
              weight.sizes(), " ", weight.scalar_type());
  const int64_t I = weight.size(1), O = weight.size(0);
  auto sizes = x.sizes().vec();
  sizes.back() = O;
  if (x.numel() == 0) return torch::zeros(sizes, x.options());  // [..., O]
  torch::jit::Stack stack{x.reshape({-1, I}).contiguous(), weight, c10::IValue(), std::string("none"),
                          c10::List<std::optional<at::Scalar>>(), c10::IValue()};
  linear_op()->callBoxed(&stack);
  return stack[0].toTensor().view(sizes);  // [..., O]
}

torch::Tensor linear_product(const torch::Tensor& x, const torch::Tensor& weight, bool onednn) {
  return onednn && onednn_linear_applies(x, weight) ? onednn_linear(x, weight) : torch::linear(x, weight);  // [..., O]
}

namespace {

struct FrozenLinearFn : torch::autograd::Function<FrozenLinearFn> {
  // x [N, I], weight [O, I] frozen -> [N, O]. Forward runs without gradient mode, so oneDNN applies.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                                                torch::Tensor weight) {
    ctx->save_for_backward({weight});
    return {onednn_linear(x, weight)};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto weight = ctx->get_saved_variables()[0];
    const auto g = grad[0].contiguous();                             // [N, O]
    return {linear_product(g, weight.t(), /*onednn=*/true), torch::Tensor()};  // [N, I]
  }
};

}  // namespace

torch::Tensor frozen_linear(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(!weight.requires_grad(), "frozen_linear: the weight must not require grad");
  bool applies;
  {
    torch::NoGradGuard ng;
    applies = onednn_linear_applies(x, weight);
  }
  if (!applies || !x.requires_grad() || !torch::GradMode::is_enabled()) return linear_product(x, weight, true);
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return FrozenLinearFn::apply(x.reshape({-1, x.size(-1)}), weight)[0].view(sizes);  // [..., O]
}

}  // namespace sbtrec::nn
