// Encoder training loop (see trainer.h).
#include "sbtrec/encoder/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/progress.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/optim/fused_adam.h"

namespace sbtrec::encoder {

double train_step(EncoderImpl& model, torch::optim::Optimizer& optimizer, const std::string& loss,
                  const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target) {
  optimizer.zero_grad();
  auto z = model.sequence_representation(seq, lengths);  // [B, Z]
  torch::Tensor l;
  if (loss == "ce") {
    l = torch::nn::functional::cross_entropy(model.all_logits(z), target);
  } else {
    // One negative per sample, uniform over the N - 1 items that are not the target.
    auto neg = torch::randint(0, model.num_items() - 1, target.sizes(), target.options());  // [B]
    neg = neg + neg.ge(target).to(torch::kInt64);
    auto logits = model.item_logits(z, torch::stack({target, neg}, 1));                     // [B, 2]
    auto labels = torch::zeros_like(logits);
    labels.select(1, 0).fill_(1.0);
    l = torch::binary_cross_entropy_with_logits(logits, labels) * 2.0;  // = mean(pos loss) + mean(neg loss)
  }
  l.backward();
  optimizer.step();
  return l.item<double>();
}

namespace {

bool better(const eval::Metrics& a, const eval::Metrics& b) {
  return a.hr1 > b.hr1 || (a.hr1 == b.hr1 && a.ndcg10 > b.ndcg10);
}

nlohmann::json record(int epoch, int64_t step, const char* split, const eval::Metrics& m) {
  auto j = m.to_json();
  j["epoch"] = epoch;
  j["step"] = step;
  j["split"] = split;
  return j;
}

}  // namespace

TrainResult train_encoder(const Config& cfg, const data::Dataset& ds) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::manual_seed(cfg.seed);
  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);
  make_dirs(cfg.output_dir);
  const std::string config_yaml = config_to_yaml(cfg);
  atomic_write_string(cfg.output_dir + "/config.yaml", config_yaml);
  MetricsLog metrics(cfg.output_dir);
  if (ds.train.empty()) throw DataError(ds.root + ": the training split has no samples");

  Encoder model = make_encoder(cfg.model, ds.num_items);
  optim::FusedAdam optimizer(model->parameters(),
                               torch::optim::AdamOptions(cfg.train.lr).weight_decay(cfg.train.weight_decay));
  const auto train = data::to_tensors(ds.train, ds.num_items, cfg.model.max_len);
  const auto val_candidates = data::make_candidates(ds, data::Split::kVal, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const int64_t S = train.seq.size(0), B = cfg.train.batch_size;
  const int64_t steps_per_epoch = (S + B - 1) / B;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);

  TrainResult result;
  result.checkpoint_dir = cfg.output_dir + "/checkpoint";
  int since_best = 0;
  int64_t step = 0;
  spdlog::info("training {} on {}: {} samples, {} steps/epoch, up to {} epochs", cfg.model.type, ds.name, S,
               steps_per_epoch, cfg.train.epochs);
  for (int epoch = 1; epoch <= cfg.train.epochs; ++epoch) {
    model->train();
    auto perm = torch::randperm(S, gen, torch::kInt64);
    Progress progress(fmt::format("epoch {}/{}", epoch, cfg.train.epochs), steps_per_epoch, B, cfg.train.log_every);
    double loss_sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      auto idx = perm.slice(0, s * B, std::min(S, (s + 1) * B));
      const double l = train_step(*model, optimizer, cfg.train.loss, train.seq.index_select(0, idx),
                                  train.lengths.index_select(0, idx), train.target.index_select(0, idx));
      loss_sum += l;
      ++step;
      progress.update(s + 1, loss_sum / (s + 1));
    }
    progress.finish();
    const double sps = progress.samples_per_second();
    metrics.write({{"epoch", epoch}, {"step", step}, {"split", "train"}, {"loss", loss_sum / steps_per_epoch},
                   {"samples_per_s", sps}});
    if (epoch % cfg.train.eval_every != 0 && epoch != cfg.train.epochs) continue;
    auto val = eval::evaluate_encoder(*model, ds, data::Split::kVal, val_candidates, cfg.model.max_len, cfg.eval.batch_size);
    metrics.write(record(epoch, step, "val", val));
    const bool improved = result.best_epoch < 0 || better(val, result.best_val);
    spdlog::info("epoch {} loss {:.4f} {:.0f} samples/s | val HR@1 {:.4f} NDCG@10 {:.4f}{}", epoch,
                 loss_sum / steps_per_epoch, sps, val.hr1, val.ndcg10, improved ? " (best)" : "");
    if (improved) {
      result.best_val = val;
      result.best_epoch = epoch;
      since_best = 0;
      save_encoder(result.checkpoint_dir, *model, config_yaml);
    } else if (++since_best >= cfg.train.patience) {
      spdlog::info("early stop: no better validation HR@1 for {} evaluations (best epoch {})", since_best, result.best_epoch);
      break;
    }
  }
  if (result.best_epoch < 0) {  // epochs == 0: keep the initial model so eval still has a checkpoint
    result.best_val = eval::evaluate_encoder(*model, ds, data::Split::kVal, val_candidates, cfg.model.max_len, cfg.eval.batch_size);
    result.best_epoch = 0;
    save_encoder(result.checkpoint_dir, *model, config_yaml);
  }
  Encoder best = load_encoder(result.checkpoint_dir, ds.num_items);
  const auto test_candidates = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  result.test = eval::evaluate_encoder(*best, ds, data::Split::kTest, test_candidates, cfg.model.max_len, cfg.eval.batch_size);
  metrics.write(record(result.best_epoch, step, "test", result.test));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json summary = {{"model", cfg.model.type},       {"dataset", ds.name},
                            {"seed", cfg.seed},              {"best_epoch", result.best_epoch},
                            {"val", result.best_val.to_json()}, {"test", result.test.to_json()},
                            {"seconds", result.seconds},     {"checkpoint", result.checkpoint_dir}};
  atomic_write_string(cfg.output_dir + "/results.json", summary.dump(2) + "\n");
  return result;
}

}  // namespace sbtrec::encoder
