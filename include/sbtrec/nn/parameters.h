// Counting a module's parameters the way PEFT's print_trainable_parameters does: tied weights once,
// "trainable" = requires_grad. SBT-Rec's report covers codebooks, aligners and LoRA, not LoRA alone.
#pragma once
#include <torch/torch.h>

#include <string>

namespace sbtrec::nn {

// "trainable params: T || all params: N || trainable%: P" over every parameter of `module`.
std::string trainable_report(const torch::nn::Module& module);

}  // namespace sbtrec::nn
