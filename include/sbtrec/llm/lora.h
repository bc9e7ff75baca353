// LoRA (Hu et al.) as PEFT implements it: y = W x + s * B A dropout(x), s = alpha / r (or alpha / sqrt(r)
// with rank-stabilised LoRA, Kalajdzievski 2023), with W frozen,
// A [r, in] Kaiming-uniform (a = sqrt(5)) and B [out, r] zeros at initialisation. Adapter weights are
// kept in float32 even under a bf16/fp16 base (PEFT's autocast_adapter_dtype). The base weight is
// registered as `weight`, the adapter as `lora_A.weight` / `lora_B.weight`, so checkpoint keys are
// the base model's and adapter keys are PEFT's (with its `base_model.model.` prefix, see checkpoint.h).
// Legend: N rows (any leading dims), I in features, O out features, R rank.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sbtrec/common/config_io.h"
#include "sbtrec/nn/few_row_linear.h"

namespace sbtrec::llm {

struct LoraOptions {
  int64_t r = 8;           // rank
  double alpha = 32;       // lora_alpha
  double dropout = 0.1;    // lora_dropout, on the adapter's input only
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  bool use_rslora = false;  // scale by alpha / sqrt(r) instead of alpha / r (PEFT's use_rslora)
  double scaling() const { return use_rslora ? alpha / std::sqrt((double)r) : alpha / (double)r; }
};

inline void visit_fields(LoraOptions& o, config::Visitor& v) {
  v.field("r", o.r, "adapter rank", config::at_least<int64_t>(1));
  v.field("alpha", o.alpha, "scaling numerator: the adapter is scaled by alpha / r (or alpha / sqrt(r) with use_rslora)", config::greater_than(0));
  v.field("dropout", o.dropout, "dropout on the adapter input", config::in_half_open(0, 1));
  v.field("target_modules", o.target_modules, "projections that get an adapter",
          config::each_one_of({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, true));
  v.field("use_rslora", o.use_rslora, "scale by alpha / sqrt(r) instead of alpha / r (rank-stabilised LoRA, PEFT's use_rslora)");
}

// While a SkipInit is alive, new LoraLinear / Llama modules leave their weights uninitialised
// (untouched memory), for loading checkpoints without paying for a random init of 7B weights.
struct SkipInit {
  SkipInit();
  ~SkipInit();
};
bool skip_init();

class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in_features, int64_t out_features);
  // x [N..., I] -> [N..., O]
  torch::Tensor forward(const torch::Tensor& x);

  // Adds a fresh adapter of rank o.r scaled by o.scaling() (PEFT initialisation); the base weight is
  // frozen. An adapter already present is removed first.
  void enable_lora(const LoraOptions& o);
  // Removes the adapter (unmerged first, so the base weight is the checkpoint's again).
  void disable_lora();
  bool has_lora() const { return !lora_A.is_empty(); }
  // W += scaling * B A (for inference) and back. Forward skips the adapter while merged.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  // x W^T alone: [N..., I] -> [N..., O].
  torch::Tensor base_forward(const torch::Tensor& x) const;
  // Points the registered `weight` at another tensor (tying, resizing, loading onto a device).
  void replace_weight(const torch::Tensor& w) {
    parameters_["weight"] = w;
    weight = w;
  }

  torch::Tensor weight;                          // [O, I], frozen
  // The checkpoint's quantized blocks of `weight` (GGUF models on the CPU), which decoding streams
  // while they still mirror it; null otherwise. Shared by copies of the module.
  std::shared_ptr<const nn::PackedWeight> packed;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};  // [R, I], [O, R]
  double scaling = 0, dropout_p = 0;
  // dtype of the no-gradient matrix products of many rows (prompt prefill, likelihood scoring):
  // nullopt = weight's own; another (bf16) multiplies x and a cached copy of `weight` in it and returns
  // weight's dtype (llm.gemm_dtype). The copy follows `weight` (re-made after a merge or a replacement).
  std::optional<torch::ScalarType> gemm_dtype;
  // The products with `weight` on the CPU through oneDNN's matmul (nn/onednn_linear.h; llm.cpu_gemm:
  // onednn, the default): those without gradient of many rows, and in training the forward and input
  // gradient (LoRA's node, or nn::frozen_linear without an adapter); false = torch::linear / torch::mm.
  bool onednn_gemm = true;

 private:
  // weight in *gemm_dtype, made on first use; stale once weight's data or version changes.
  const torch::Tensor& gemm_weight() const;
  bool merged_ = false;
  mutable torch::Tensor gemm_weight_;
  mutable const void* gemm_source_ = nullptr;
  mutable int64_t gemm_version_ = -1;
};
TORCH_MODULE(LoraLinear);

}  // namespace sbtrec::llm
