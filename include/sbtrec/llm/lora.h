// LoRA (Hu et al.) as PEFT implements it: y = W x + (alpha / r) * B A dropout(x), with W frozen,
// A [r, in] Kaiming-uniform (a = sqrt(5)) and B [out, r] zeros at initialisation. Adapter weights are
// kept in float32 even under a bf16/fp16 base (PEFT's autocast_adapter_dtype). The base weight is
// registered as `weight`, the adapter as `lora_A.weight` / `lora_B.weight`, so checkpoint keys are
// the base model's and adapter keys are PEFT's (with its `base_model.model.` prefix, see checkpoint.h).
// Legend: N rows (any leading dims), I in features, O out features, R rank.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "sbtrec/common/config_io.h"

namespace sbtrec::llm {

struct LoraOptions {
  int64_t r = 8;
  double alpha = 32;
  double dropout = 0.1;
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  double scaling() const { return alpha / (double)r; }
};

inline void visit_fields(LoraOptions& o, config::Visitor& v) {
  v.field("r", o.r, "adapter rank", config::at_least<int64_t>(1));
  v.field("alpha", o.alpha, "scaling numerator: the adapter is scaled by alpha / r", config::greater_than(0));
  v.field("dropout", o.dropout, "dropout on the adapter input", config::in_half_open(0, 1));
  v.field("target_modules", o.target_modules, "projections that get an adapter",
          config::each_one_of({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, true));
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

  // Adds a fresh adapter (PEFT initialisation); the base weight is frozen.
  void enable_lora(int64_t r, double alpha, double dropout);
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
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};  // [R, I], [O, R]
  double scaling = 0, dropout_p = 0;

 private:
  bool merged_ = false;
};
TORCH_MODULE(LoraLinear);

}  // namespace sbtrec::llm
