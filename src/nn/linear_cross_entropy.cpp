// Chunked linear + cross entropy (see linear_cross_entropy.h).
#include "sbtrec/nn/linear_cross_entropy.h"

#include "sbtrec/nn/onednn_linear.h"

namespace sbtrec::nn {
namespace {

struct Result {
  torch::Tensor loss;         // scalar float32
  torch::Tensor grad_hidden;  // [N, D] of d loss / d hidden, or undefined
  torch::Tensor grad_weight;  // [V, D] float32, or undefined
};

// Every row of `labels` counts. d loss / d logits = (softmax - onehot) / N is formed per chunk and
// multiplied out at once, so no [N, V] tensor ever exists.
Result chunked(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels, int64_t chunk,
               bool want_hidden, bool want_weight, bool onednn) {
  const int64_t N = hidden.size(0);
  const double inv_n = 1.0 / (double)N;  // N = 0 gives the NaN of an empty mean below
  auto row_loss = torch::empty({N}, hidden.options().dtype(torch::kFloat32));  // [N]
  Result r;
  if (want_hidden) r.grad_hidden = torch::empty_like(hidden);                                   // [N, D]
  if (want_weight) r.grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));  // [V, D]
  for (int64_t s = 0; s < N; s += chunk) {
    const int64_t c = std::min(chunk, N - s);
    auto h = hidden.narrow(0, s, c);                             // [C, D]
    auto y = labels.narrow(0, s, c).unsqueeze(1);                // [C, 1]
    auto logits = (onednn ? linear_product(h, weight, true) : torch::mm(h, weight.t())).to(torch::kFloat32);  // [C, V]
    // One softmax kernel gives both the loss (-log p_y) and the gradient (p - onehot); it is faster
    // than log_softmax followed by exp. Where p_y underflows (a loss above ~69 nats) the loss is
    // taken exactly from logsumexp - logit_y instead.
    auto g = torch::softmax(logits, 1);                          // [C, V]
    auto p_y = g.gather(1, y).squeeze(1);                        // [C]
    auto loss = p_y.log().neg_();                                // [C]
    auto tiny = p_y.lt(1e-30f);
    if (tiny.any().item<bool>()) {
      auto exact = torch::logsumexp(logits, 1) - logits.gather(1, y).squeeze(1);
      loss = torch::where(tiny, exact, loss);
    }
    row_loss.narrow(0, s, c).copy_(loss);
    if (!want_hidden && !want_weight) continue;
    g.scatter_add_(1, y, torch::full({c, 1}, -1.0, g.options()));  // softmax - onehot
    if (want_hidden) {
      auto out = r.grad_hidden.narrow(0, s, c);                  // [C, D]
      auto gw = g.to(weight.scalar_type());                      // [C, V]
      if (onednn && onednn_linear_applies(gw, weight.t()))
        out.copy_(onednn_linear(gw, weight.t())).mul_(inv_n);   // g W / N
      else
        at::addmm_out(out, out, gw, weight, /*beta=*/0, /*alpha=*/inv_n);
    }
    if (want_weight) r.grad_weight.addmm_(g.t(), h.to(torch::kFloat32), /*beta=*/1, /*alpha=*/inv_n);
  }
  r.loss = row_loss.sum() * inv_n;
  return r;
}

struct LinearCrossEntropyFn : torch::autograd::Function<LinearCrossEntropyFn> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor hidden,
                                                torch::Tensor weight, torch::Tensor labels, int64_t chunk, bool onednn) {
    auto r = chunked(hidden, weight, labels, chunk, hidden.requires_grad(), weight.requires_grad(), onednn);
    ctx->save_for_backward({r.grad_hidden.defined() ? r.grad_hidden : torch::Tensor(),
                            r.grad_weight.defined() ? r.grad_weight.to(weight.scalar_type()) : torch::Tensor()});
    return {r.loss};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& g = grad[0];  // scalar
    auto scale = [&](const torch::Tensor& t) { return t.defined() ? t * g.to(t.scalar_type()) : torch::Tensor(); };
    return {scale(saved[0]), scale(saved[1]), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                   const LinearCrossEntropyOptions& options) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "linear_cross_entropy: hidden [N, D] and weight [V, D] expected, got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0) && labels.scalar_type() == torch::kInt64,
              "linear_cross_entropy: labels must be int64 [", hidden.size(0), "], got ", labels.scalar_type(), " ",
              labels.sizes());
  TORCH_CHECK(hidden.scalar_type() == weight.scalar_type(), "linear_cross_entropy: hidden is ", hidden.scalar_type(),
              " but weight is ", weight.scalar_type());
  TORCH_CHECK(options.chunk_rows > 0, "linear_cross_entropy: chunk_rows must be positive");
  auto rows = labels.ne(options.ignore_index).nonzero().squeeze(1);  // [N'] counted rows
  const bool all = rows.size(0) == labels.size(0);
  auto y = all ? labels : labels.index_select(0, rows);  // [N']
  if (y.numel()) {
    const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>(), V = weight.size(0);
    TORCH_CHECK(lo >= 0 && hi < V, "linear_cross_entropy: label ", lo < 0 ? lo : hi, " is outside [0, ", V,
                ") (and is not ignore_index ", options.ignore_index, ")");
  }
  auto h = all ? hidden : hidden.index_select(0, rows);  // [N', D]
  const bool grad = torch::GradMode::is_enabled() && (h.requires_grad() || weight.requires_grad());
  if (!grad) return chunked(h.detach(), weight.detach(), y, options.chunk_rows, false, false, options.onednn).loss;
  return LinearCrossEntropyFn::apply(h, weight, y, options.chunk_rows, options.onednn)[0];
}

}  // namespace sbtrec::nn
