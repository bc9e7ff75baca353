// Encoder training loop (see encoder_trainer.h).
#include "sbtrec/train/encoder_trainer.h"

#include <spdlog/spdlog.h>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/encoder/evaluate.h"
#include "sbtrec/optim/fused_adam.h"

namespace sbtrec::train {

namespace {

// The mean loss of a batch: full softmax, or BCE with one negative per sample drawn uniformly over the
// N - 1 items that are not the target.
torch::Tensor encoder_loss(encoder::EncoderImpl& model, EncoderLoss loss, const torch::Tensor& seq,
                           const torch::Tensor& lengths, const torch::Tensor& target) {
  auto z = model.sequence_representation(seq, lengths);  // [B, Z]
  if (loss == EncoderLoss::kCE) return torch::nn::functional::cross_entropy(model.all_logits(z), target);
  auto neg = torch::randint(0, model.num_items() - 1, target.sizes(), target.options());  // [B]
  neg = neg + neg.ge(target).to(torch::kInt64);
  auto logits = model.item_logits(z, torch::stack({target, neg}, 1));                     // [B, 2]
  auto labels = torch::zeros_like(logits);
  labels.select(1, 0).fill_(1.0);
  return torch::binary_cross_entropy_with_logits(logits, labels) * 2.0;  // = mean(pos loss) + mean(neg loss)
}

}  // namespace

double encoder_train_step(encoder::EncoderImpl& model, torch::optim::Optimizer& optimizer, EncoderLoss loss,
                          const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target,
                          dist::ProcessGroup* group, int64_t bucket_bytes) {
  optimizer.zero_grad();
  const bool parallel = group && group->size() > 1;
  const int64_t n = target.size(0);
  const double total = parallel ? group->all_reduce_sum((double)n, "sample count") : (double)n;
  double l = 0;
  if (n > 0) {
    auto t = encoder_loss(model, loss, seq, lengths, target);
    if (parallel) t = t * ((double)n / total);  // this rank's mean x its share = its sum / global count
    t.backward();
    l = t.item<double>();
  }
  if (parallel) {
    dist::all_reduce_gradients(*group, model.parameters(), bucket_bytes);
    l = group->all_reduce_sum(l, "loss");
  }
  optimizer.step();
  return l;
}

EncoderTrainResult train_encoder(const Config& cfg, const data::Dataset& ds, Run& run, dist::ProcessGroup* group) {
  if (ds.train.empty()) throw DataError(ds.root + ": the training split has no samples");
  dist::ProcessGroup single;
  dist::ProcessGroup& g = group ? *group : single;
  const int W = g.size(), R = g.rank();
  run.set_writes(g.main());
  torch::manual_seed(cfg.seed);
  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);
  // Everything that can fail on the inputs happens before the run directory is written.
  const auto val_candidates = data::make_candidates(ds, data::Split::kVal, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const auto test_candidates = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const auto train = data::to_tensors(ds.train, ds.num_items, cfg.encoder.max_len);
  encoder::Encoder model = encoder::make_encoder(cfg.encoder, ds.num_items);
  optim::FusedAdam optimizer(model->parameters(),
                             torch::optim::AdamOptions(cfg.train.lr).weight_decay(cfg.train.weight_decay));
  // Every rank built the same initial model from cfg.seed; negatives and dropout differ per rank.
  if (W > 1) torch::manual_seed(stream_key(cfg.seed, /*purpose: rank draws*/ 11, (uint64_t)R));
  const int64_t bucket_bytes = (int64_t)(cfg.dist.bucket_mb * (1 << 20));
  g.barrier("start");  // every rank has checked the run directory before rank 0 writes into it
  run.start();

  const int64_t S = train.seq.size(0), B = cfg.train.batch_size, G = B * W;
  const int64_t steps_per_epoch = (S + G - 1) / G;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  auto save = [&](const std::string& dir) { encoder::save_encoder(dir, *model, run.config_yaml()); };
  auto validate = [&]() {
    return encoder::evaluate_encoder(*model, ds, data::Split::kVal, val_candidates, cfg.encoder.max_len, cfg.eval.batch_size);
  };
  std::vector<torch::Tensor> parameters;
  std::vector<std::string> parameter_names;
  for (const auto& p : model->named_parameters()) {
    parameters.push_back(p.value());
    parameter_names.push_back(p.key());
  }
  int64_t step = 0;
  spdlog::info("training {} on {}: {} samples, batch {} x {} processes, {} steps/epoch, up to {} epochs",
               encoder_name(cfg.encoder.type), ds.name, S, B, W, steps_per_epoch, cfg.train.epochs);
  for (int epoch = 1; epoch <= cfg.train.epochs; ++epoch) {
    model->train();
    auto perm = torch::randperm(S, gen, torch::kInt64);
    Progress progress = run.progress(fmt::format("epoch {}/{}", epoch, cfg.train.epochs), steps_per_epoch, G);
    double loss_sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t begin = std::min(S, s * G + R * B);
      auto idx = perm.slice(0, begin, std::min(S, begin + B));  // this rank's share of the step
      loss_sum += encoder_train_step(*model, optimizer, cfg.train.loss, train.seq.index_select(0, idx),
                                     train.lengths.index_select(0, idx), train.target.index_select(0, idx),
                                     &g, bucket_bytes);
      ++step;
      progress.update(s + 1, loss_sum / (s + 1));
    }
    progress.finish();
    if (W > 1) {
      dist::check_identical(g, parameters, parameter_names, fmt::format("encoder weights after epoch {}", epoch));
      spdlog::info("encoder weights identical on {} ranks ({} tensors) after epoch {}", W, parameters.size(), epoch);
    }
    const double sps = progress.samples_per_second();
    run.log({{"epoch", epoch}, {"step", step}, {"split", "train"}, {"loss", loss_sum / steps_per_epoch}, {"samples_per_s", sps}});
    if (!run.validation_due(epoch)) continue;
    const auto val = validate();
    const bool improved = run.report_validation(epoch, step, val, save);
    spdlog::info("epoch {} loss {:.4f} {:.0f} samples/s | val HR@1 {:.4f} NDCG@10 {:.4f}{}", epoch, loss_sum / steps_per_epoch,
                 sps, val.hr1.value_or(0), val.ndcg10.value_or(0), improved ? " (best)" : "");
    if (run.should_stop()) {
      spdlog::info("early stop: no better validation {} for {} evaluations (best epoch {})", cfg.train.monitor.front(),
                   cfg.train.patience, run.best_epoch());
      break;
    }
  }
  // epochs == 0: keep the initial model so evaluation still has a checkpoint.
  if (run.best_epoch() < 0) run.report_validation(0, step, validate(), save);

  EncoderTrainResult result;
  result.best_epoch = run.best_epoch();
  result.best_val = run.best();
  result.checkpoint_dir = run.checkpoint_dir();
  if (!g.main()) return result;  // rank 0 tests the best checkpoint and writes results.json
  encoder::Encoder best = encoder::load_encoder(result.checkpoint_dir, ds.num_items);
  result.test = encoder::evaluate_encoder(*best, ds, data::Split::kTest, test_candidates, cfg.encoder.max_len, cfg.eval.batch_size);
  run.log(metrics_record(result.best_epoch, step, "test", result.test));
  result.results = run.finish({{"model", encoder_name(cfg.encoder.type)},
                               {"dataset", ds.name},
                               {"seed", cfg.seed},
                               {"test", result.test.to_json()}});
  result.seconds = run.seconds();
  return result;
}

}  // namespace sbtrec::train
