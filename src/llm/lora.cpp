// LoRA linear layer (see lora.h).
#include "sbtrec/llm/lora.h"

#include <cmath>

#include "sbtrec/nn/dropout.h"
#include "sbtrec/nn/few_row_linear.h"
#include "sbtrec/nn/onednn_linear.h"

namespace sbtrec::llm {

namespace {
thread_local int skip_init_depth = 0;
}

SkipInit::SkipInit() { ++skip_init_depth; }
SkipInit::~SkipInit() { --skip_init_depth; }
bool skip_init() { return skip_init_depth > 0; }

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}), /*requires_grad=*/false);
  if (!skip_init()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

void LoraLinearImpl::enable_lora(const LoraOptions& o) {
  TORCH_CHECK(o.r > 0, "LoRA rank must be positive");
  disable_lora();
  const int64_t r = o.r;
  const auto opts = torch::nn::LinearOptions(weight.size(1), r).bias(false);
  lora_A = register_module("lora_A", torch::nn::Linear(opts));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, weight.size(0)).bias(false)));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
  if (weight.device() != torch::kCPU) {
    lora_A->to(weight.device());
    lora_B->to(weight.device());
  }
  scaling = o.scaling();
  dropout_p = o.dropout;
}

void LoraLinearImpl::disable_lora() {
  if (!has_lora()) return;
  unmerge();
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
  scaling = dropout_p = 0;
}

namespace {

// y = x W^T + (s (x * mask) A^T) B^T with W frozen, as one autograd node: the base GEMM accumulates
// onto the adapter's output (addmm), the scaling is applied on the [N, R] product, and the input
// gradient is formed the same way. Same values as PEFT's lora_B(lora_A(dropout(x))) * scaling up to
// float rounding, with fewer passes over [N, O] and [N, I] tensors than its separate ops and nodes.
struct LoraFn : torch::autograd::Function<LoraFn> {
  // x [N, I], weight [O, I], a [R, I], b [O, R], mask [N, I] or empty (no dropout); onednn: the base
  // products through oneDNN where it applies (LoraLinearImpl::onednn_gemm).
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                                                torch::Tensor weight, torch::Tensor a, torch::Tensor b,
                                                torch::Tensor mask, double scaling, bool onednn) {
    auto h = mask.numel() ? x * mask : x;         // [N, I]
    auto u = torch::mm(h, a.t()).mul_(scaling);   // [N, R]
    torch::Tensor y;                              // [N, O]
    if (onednn && nn::onednn_linear_applies(x, weight)) {
      // oneDNN's base GEMM (~2x MKL's here, nn/onednn_linear.h), then the rank-R product added into it
      // (measured faster than oneDNN's fused sum).
      y = nn::onednn_linear(x, weight).addmm_(u, b.t());
    } else {
      // The rank-R product first and the base GEMM accumulated onto it (beta = 1 is free inside a
      // compute-bound GEMM; the other order re-reads and re-writes all of y in a memory-bound one).
      y = torch::mm(u, b.t()).addmm_(x, weight.t());
    }
    ctx->save_for_backward({h, u, weight, a, b, mask});
    ctx->saved_data["scaling"] = scaling;
    ctx->saved_data["onednn"] = onednn;
    return {y};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &u = saved[1], &weight = saved[2], &a = saved[3], &b = saved[4], &mask = saved[5];
    const auto& g = grad[0];                                                     // [N, O]
    // The rank-R GEMMs are memory-bound and MKL streams g 2-7x faster when the small operand is
    // the transposed one: B is passed column-major, and B's gradient is formed as (u^T g)^T.
    auto gu = torch::mm(g, b.t().contiguous().t()).mul_(ctx->saved_data["scaling"].toDouble());  // [N, R]
    torch::Tensor gx;
    if (ctx->needs_input_grad(0)) {
      if (ctx->saved_data["onednn"].toBool() && nn::onednn_linear_applies(g, weight.t())) {
        gx = nn::onednn_linear(g, weight.t());                                   // [N, I]: g W
        if (mask.numel()) gx.addcmul_(torch::mm(gu, a), mask);
        else gx.addmm_(gu, a);
      } else {
        gx = torch::mm(gu, a);                                                   // [N, I]
        if (mask.numel()) gx.mul_(mask);
        gx.addmm_(g, weight);
      }
    }
    auto ga = ctx->needs_input_grad(2) ? torch::mm(gu.t(), h) : torch::Tensor();  // [R, I]
    auto gb = ctx->needs_input_grad(3) ? torch::mm(u.t(), g).t().contiguous() : torch::Tensor();  // [O, R]
    return {gx, torch::Tensor(), ga, gb, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

const torch::Tensor& LoraLinearImpl::gemm_weight() const {
  if (!gemm_weight_.defined() || gemm_source_ != weight.data_ptr() || gemm_version_ != weight._version() ||
      gemm_weight_.sizes() != weight.sizes()) {
    gemm_weight_ = weight.detach().to(*gemm_dtype).contiguous();  // [O, I]
    gemm_source_ = weight.data_ptr();
    gemm_version_ = weight._version();
  }
  return gemm_weight_;
}

torch::Tensor LoraLinearImpl::base_forward(const torch::Tensor& x) const {
  // Decoding (a few rows, no gradient) streams W through the few-row kernel instead of the GEMM,
  // from the checkpoint's quantized blocks where they still mirror W.
  if (!nn::few_row_linear_applies(x, weight)) {
    const auto product = [this](const torch::Tensor& a, const torch::Tensor& w) {
      return nn::linear_product(a, w, onednn_gemm);  // [N..., O]
    };
    if (gemm_dtype && *gemm_dtype != weight.scalar_type() && x.scalar_type() == weight.scalar_type() &&
        !torch::GradMode::is_enabled())
      return product(x.to(*gemm_dtype), gemm_weight()).to(weight.scalar_type());  // [N..., O]
    // Training through a frozen weight without an adapter: oneDNN forward and backward.
    if (onednn_gemm && torch::GradMode::is_enabled() && x.requires_grad() && !weight.requires_grad())
      return nn::frozen_linear(x, weight);  // [N..., O]
    return product(x, weight);  // [N..., O]
  }
  if (!packed || !packed->mirrors(weight)) return nn::few_row_linear(x, weight);
  const int64_t rows = packed->out_features, extra = weight.size(0) - rows;
  if (extra == 0) return nn::few_row_linear(x, *packed);
  // Rows added after loading (special tokens) have no blocks: those come from the float32 weight.
  return torch::cat({nn::few_row_linear(x, *packed), nn::few_row_linear(x, weight.narrow(0, rows, extra))}, -1);  // [N..., O]
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  if (!has_lora() || merged_) return base_forward(x);  // [N..., O]
  const auto adapter_dtype = lora_A->weight.scalar_type();
  const bool training = is_training() && dropout_p > 0;
  const bool backprop = torch::GradMode::is_enabled() &&
                        (x.requires_grad() || lora_A->weight.requires_grad() || lora_B->weight.requires_grad());
  // Training takes the single node; inference (no gradient) the base path below, which decodes
  // through the few-row kernel.
  if (backprop && x.scalar_type() == adapter_dtype && weight.scalar_type() == adapter_dtype &&
      !weight.requires_grad() && x.dim() >= 2) {
    auto x2 = x.reshape({-1, x.size(-1)});  // [N, I]
    auto mask = training ? nn::dropout_mask(x2.sizes(), dropout_p, x2.options())
                         : torch::empty({0}, x2.options());
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    return LoraFn::apply(x2, weight, lora_A->weight, lora_B->weight, mask, scaling, onednn_gemm)[0].view(sizes);  // [N..., O]
  }
  auto y = base_forward(x);                                              // [N..., O]
  if (!backprop && !training && y.scalar_type() == adapter_dtype && x.scalar_type() == adapter_dtype &&
      y.is_contiguous()) {
    // Inference: the rank-R product accumulated into y in place, as LoraFn does (no [N, O] temporaries
    // for the scaled product and the sum).
    auto u = torch::mm(x.reshape({-1, x.size(-1)}), lora_A->weight.t()).mul_(scaling);  // [N, R]
    y.view({-1, y.size(-1)}).addmm_(u, lora_B->weight.t());                           // [N, O]
    return y;
  }
  auto h = nn::dropout(x.to(adapter_dtype), dropout_p, is_training());  // [N..., I]
  return y + (lora_B(lora_A(h)) * scaling).to(y.scalar_type());         // [N..., O]
}

void LoraLinearImpl::merge() {
  if (!has_lora() || merged_) return;
  torch::NoGradGuard no_grad;
  weight.add_((torch::mm(lora_B->weight, lora_A->weight) * scaling).to(weight.scalar_type()));  // [O, I]
  merged_ = true;
}

void LoraLinearImpl::unmerge() {
  if (!has_lora() || !merged_) return;
  torch::NoGradGuard no_grad;
  weight.sub_((torch::mm(lora_B->weight, lora_A->weight) * scaling).to(weight.scalar_type()));
  merged_ = false;
}

}  // namespace sbtrec::llm
