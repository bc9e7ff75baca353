// Benchmarks of the Llama stack on CPU, mirroring bench/reference/lm_step.py and lm_generate.py:
//   step:     LoRA training steps (forward + causal-LM loss + backward + AdamW on the adapters) of
//             llama_bench_small() (8 layers, width 512, vocab 32000, fp32) or a real model (--model),
//             batch x seq random ids, labels on all tokens or on the last --label-tokens of each row.
//   generate: greedy decoding of N new tokens from a random prompt (--prompt-tokens), batch 1, KV cache.
//   stream:   one decoding step's weight traffic alone: x [rows, I] through every projection and lm_head,
//             torch::linear vs nn::few_row_linear, in GB/s of weights read.
// Prints one JSON line each; bench/lm_step.sh and bench/lm_generate.sh compare with the references.
#include <c10/cuda/CUDACachingAllocator.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <iostream>

#include "../src/cli/cli_common.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/llama.h"
#include "sbtrec/nn/few_row_linear.h"

using namespace sbtrec;

namespace {

// Random weights for a benchmark model of any size, created directly on `device` in `dtype` (no
// full-size CPU init: 7B fp32 would not fit a laptop and would take minutes).
llm::LlamaForCausalLM random_model(const llm::LlamaConfig& cfg, const torch::Device& device, torch::ScalarType dtype) {
  llm::LlamaForCausalLM model{nullptr};
  {
    llm::SkipInit no_init;
    model = llm::LlamaForCausalLM(cfg);
  }
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto fresh = torch::empty(item.value().sizes(), torch::TensorOptions().dtype(dtype).device(device));
    if (item.key().find("norm") != std::string::npos) fresh.fill_(1.0);
    else fresh.normal_(0.0, 0.02);
    item.value().set_data(fresh);
  }
  return model;
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-bench-lm: Llama LoRA training step and greedy generation timings"};
  app.require_subcommand(1);
  int threads = 1, steps = 3, warmup = 1, batch = 4, seq = 256, new_tokens = 64, seed = 0, label_tokens = 0,
      prompt_tokens = 32;
  bool checkpointing = false, no_packed = false;
  std::string preset = "small", device_name = "cpu", dtype_name = "fp32", model_path;
  auto add_model_options = [&](CLI::App* sub) {
    sub->add_option("--model", model_path, "Real weights (HF directory, .gguf or default) instead of a random --preset");
    sub->add_option("--preset", preset, "small (8 layers, width 512) | 7b (Llama-2-7B shape)")->check(CLI::IsMember({"small", "7b"}));
    sub->add_option("--device", device_name, "cpu | cuda | cuda:N");
    sub->add_option("--dtype", dtype_name, "fp32 | bf16 | fp16")->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
    sub->add_flag("--no-packed", no_packed, "--model FILE.gguf: decode from the float32 weights, not the quantized blocks");
  };
  auto* step = app.add_subcommand("step", "LoRA training steps");
  step->add_option("--threads", threads);
  step->add_option("--steps", steps);
  step->add_option("--warmup", warmup);
  step->add_option("--batch", batch);
  step->add_option("--seq", seq);
  step->add_flag("--checkpointing", checkpointing, "Activation checkpointing per layer");
  step->add_option("--label-tokens", label_tokens, "Labels only on the last N tokens of each row (0 = all), as SBT-Rec's answers");
  bool full_logits = false;
  int64_t chunk_rows = nn::LinearCrossEntropyOptions{}.chunk_rows;
  step->add_option("--chunk-rows", chunk_rows, "Rows per logits chunk of the loss");
  step->add_flag("--full-logits", full_logits, "Loss from materialised [B, T, V] logits (forward + causal_lm_loss), for comparison");
  std::string profile;
  step->add_option("--profile", profile, "Profile the timed steps into this chrome-trace file");
  add_model_options(step);
  auto* gen = app.add_subcommand("generate", "Greedy generation");
  add_model_options(gen);
  gen->add_option("--threads", threads);
  gen->add_option("--new-tokens", new_tokens);
  gen->add_option("--prompt-tokens", prompt_tokens);
  gen->add_option("--profile", profile, "Profile the timed generation into this chrome-trace file");
  auto* stream = app.add_subcommand("stream", "Weight streaming of one decoding step: torch::linear vs few_row_linear");
  stream->add_option("--threads", threads);
  int repeats = 30;
  int64_t rows = 1;
  stream->add_option("--repeats", repeats);
  stream->add_option("--rows", rows, "Rows of x (sequences x beams at a decode step); few_row_linear takes at most 8");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    torch::set_num_threads(threads);
    torch::manual_seed(seed);
    const torch::Device device(device_name);
    if (device.is_cuda() && !torch::cuda::is_available()) throw ConfigError("--device " + device_name + ": no CUDA device here");
    auto model = model_path.empty()
                     ? random_model(preset == "7b" ? llm::llama2_7b() : llm::llama_bench_small(), device, llm::parse_dtype(dtype_name))
                     : llm::load_llama(model_path, llm::parse_dtype(dtype_name), device);
    if (no_packed) llm::drop_packed_weights(*model);
    const auto cfg = model->config;
    nlohmann::json j = {{"impl", "sbtrec"}, {"threads", threads}, {"torch", TORCH_VERSION},
                        {"preset", model_path.empty() ? preset : model_path}, {"device", device_name}, {"dtype", dtype_name},
                        {"packed", !model_path.empty() && !no_packed}};
    if (*step) {
      llm::LoraOptions lo;  // r 8, alpha 32, dropout 0.1, all seven projections
      model->add_lora(lo);
      model->set_gradient_checkpointing(checkpointing);
      model->train();
      std::vector<torch::Tensor> params;
      for (auto& p : model->parameters())
        if (p.requires_grad()) params.push_back(p);
      torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-4));
      auto ids = torch::randint(0, cfg.vocab_size, {batch, seq}, torch::kInt64).to(device);
      auto labels = ids.clone();  // [B, T]
      if (label_tokens > 0) labels.narrow(1, 0, std::max(0, seq - label_tokens)).fill_(-100);
      double loss = 0;
      auto one = [&]() {
        opt.zero_grad();
        llm::ForwardInputs in;
        in.input_ids = ids;
        auto l = full_logits ? llm::LlamaForCausalLMImpl::causal_lm_loss(model->forward(in), labels)
                             : model->loss(in, labels, nn::LinearCrossEntropyOptions{chunk_rows});
        l.backward();
        opt.step();
        loss = l.item<double>();
      };
      for (int i = 0; i < warmup; ++i) one();
      if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
      std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
      if (!profile.empty()) prof = std::make_unique<torch::autograd::profiler::RecordProfile>(profile);
      sync(device);
      const double t0 = now();
      for (int i = 0; i < steps; ++i) one();
      sync(device);
      const double per = (now() - t0) / steps;
      if (device.is_cuda()) {
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
        j["peak_memory_bytes"] = stats.allocated_bytes[0].peak;
      }
      int64_t trainable = 0;
      for (auto& p : params) trainable += p.numel();
      j.update({{"mode", "step"}, {"steps", steps}, {"seconds_per_step", per}, {"tokens_per_s", batch * seq / per},
                {"final_loss", loss}, {"batch", batch}, {"seq", seq}, {"trainable_params", trainable},
                {"checkpointing", checkpointing}, {"loss", full_logits ? "full logits" : "chunked"},
                {"label_tokens", label_tokens}});
    } else if (*stream) {
      if (!device.is_cpu() || dtype_name != "fp32") throw ConfigError("stream: CPU fp32 only");
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> weights;  // every projection of every layer, then lm_head: [O, I] each
      double bytes = 0;
      for (auto& m : model->modules(false))
        if (auto lin = std::dynamic_pointer_cast<llm::LoraLinearImpl>(m)) {
          weights.push_back(lin->weight);
          bytes += lin->weight.numel() * 4.0;
        }
      std::map<int64_t, torch::Tensor> inputs;  // one random row per input width
      for (auto& w : weights)
        if (!inputs.count(w.size(1))) inputs[w.size(1)] = torch::randn({rows, w.size(1)});
      auto gbps = [&](bool few) {
        auto pass = [&] {
          for (auto& w : weights) few ? nn::few_row_linear(inputs[w.size(1)], w) : torch::linear(inputs[w.size(1)], w);
        };
        for (int i = 0; i < 3; ++i) pass();
        const double t0 = now();
        for (int i = 0; i < repeats; ++i) pass();
        return bytes * repeats / (now() - t0) / 1e9;
      };
      const double linear = gbps(false), few = gbps(true);
      j.update({{"mode", "stream"}, {"rows", rows}, {"weight_bytes", bytes}, {"matrices", weights.size()},
                {"torch_linear_gb_per_s", linear}, {"few_row_linear_gb_per_s", few}});
    } else {
      model->eval();
      auto prompt = torch::randint(3, cfg.vocab_size, {1, prompt_tokens}, torch::kInt64).to(device);
      llm::GenerationOptions o;
      o.max_new_tokens = new_tokens;  // no EOS: exactly new_tokens, as the reference
      llm::generate(*model, prompt, {}, o);  // warm-up
      std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
      if (!profile.empty()) prof = std::make_unique<torch::autograd::profiler::RecordProfile>(profile);
      sync(device);
      const double t0 = now();
      auto out = llm::generate(*model, prompt, {}, o);
      sync(device);
      const double secs = now() - t0;
      const int64_t made = out.size(1) - prompt.size(1);
      j.update({{"mode", "generate"}, {"new_tokens", made}, {"prompt_tokens", prompt_tokens}, {"seconds", secs},
                {"tokens_per_s", made / secs}});
    }
    std::cout << j.dump() << std::endl;
    return 0;
  });
}
