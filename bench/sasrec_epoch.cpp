// Benchmark: one SASRec training epoch (forward + BCE with one sampled negative + backward + Adam)
// over the config's training samples, timed after a few warm-up steps. bench/sasrec_epoch.sh runs it
// next to bench/reference/sasrec_epoch.py on the same samples and prints the speedup.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <iostream>

#include "../src/cli/cli_common.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/data/dataset.h"
#include "sbtrec/train/encoder_trainer.h"
#include "sbtrec/optim/fused_adam.h"

using namespace sbtrec;

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-bench-sasrec: time one SASRec training epoch"};
  cli::ConfigArgs cfg_args;
  cfg_args.add_to(app);
  int threads = 1, warmup = 5;
  app.add_option("--threads", threads, "torch intra-op threads");
  app.add_option("--warmup-steps", warmup, "untimed steps before the epoch");
  std::string profile;
  app.add_option("--profile", profile, "Instead of timing: profile 20 steps into this chrome-trace file");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    torch::set_num_threads(threads);
    torch::manual_seed(cfg.seed);
    const auto ds = data::load_dataset(cfg.data);
    auto t = data::to_tensors(ds.train, ds.num_items, cfg.encoder.max_len);
    auto model = encoder::make_encoder(cfg.encoder, ds.num_items);
    model->train();
    optim::FusedAdam opt(model->parameters(), torch::optim::AdamOptions(cfg.train.lr));
    const int64_t S = t.seq.size(0), B = cfg.train.batch_size;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
    auto run = [&](int64_t first, int64_t count, const torch::Tensor& perm, double& loss) {
      for (int64_t s = first; s < first + count; ++s) {
        auto idx = perm.slice(0, s * B, std::min(S, (s + 1) * B));
        loss = train::encoder_train_step(*model, opt, cfg.train.loss, t.seq.index_select(0, idx), t.lengths.index_select(0, idx),
                                   t.target.index_select(0, idx));
      }
    };
    double loss = 0;
    run(0, warmup, torch::randperm(S, gen, torch::kInt64), loss);
    if (!profile.empty()) {
      torch::autograd::profiler::RecordProfile guard(profile);
      run(0, 20, torch::randperm(S, gen, torch::kInt64), loss);
      return 0;
    }
    const int64_t steps = (S + B - 1) / B;
    const auto t0 = std::chrono::steady_clock::now();
    run(0, steps, torch::randperm(S, gen, torch::kInt64), loss);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j = {{"impl", "sbtrec"}, {"samples", S}, {"steps", steps}, {"seconds", secs},
                        {"samples_per_s", S / secs}, {"final_loss", loss}, {"threads", threads},
                        {"torch", TORCH_VERSION}};
    std::cout << j.dump() << std::endl;
    return 0;
  });
}
