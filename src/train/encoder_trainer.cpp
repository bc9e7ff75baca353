// The sequential encoders as the recipe "encoder" on the training loop (see encoder_trainer.h).
#include "sbtrec/train/encoder_trainer.h"

#include <spdlog/spdlog.h>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/encoder/evaluate.h"
#include "sbtrec/optim/fused_adam.h"
#include "sbtrec/train/loop.h"

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

namespace {

// One rank's share of a micro-batch: histories, their lengths and targets.
struct EncoderMicro : MicroBatch {
  torch::Tensor seq, lengths, target;  // [B, T], [B], [B]
};

// The encoders' objective: full softmax or BCE with one sampled negative, a mean over samples.
class EncoderObjective : public Objective {
 public:
  EncoderObjective(encoder::EncoderImpl& model, EncoderLoss loss, const data::SampleTensors* train)
      : model_(model), loss_(loss), train_(train) {}
  std::unique_ptr<MicroBatch> prepare(const StepContext&, const std::vector<int64_t>& rows) override {
    auto idx = torch::tensor(rows, torch::kInt64);  // [B]
    return make(train_->seq.index_select(0, idx), train_->lengths.index_select(0, idx), train_->target.index_select(0, idx));
  }
  static std::unique_ptr<EncoderMicro> make(torch::Tensor seq, torch::Tensor lengths, torch::Tensor target) {
    auto m = std::make_unique<EncoderMicro>();
    m->units = m->throughput = (double)target.size(0);
    m->seq = std::move(seq);
    m->lengths = std::move(lengths);
    m->target = std::move(target);
    return m;
  }
  torch::Tensor loss(MicroBatch& micro) override {
    auto& m = static_cast<EncoderMicro&>(micro);
    return encoder_loss(model_, loss_, m.seq, m.lengths, m.target);
  }

 private:
  encoder::EncoderImpl& model_;
  EncoderLoss loss_;
  const data::SampleTensors* train_;
};

// The encoder recipe: Adam over all weights at a constant lr, one train record per epoch, validation
// every train.eval_every epochs with early stopping; negatives and dropout from torch's generator,
// seeded once per run (per rank under data parallelism), as LLaRA's trainer does; no training state.
class EncoderRecipe : public Recipe {
 public:
  EncoderRecipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml, dist::ProcessGroup& group)
      : cfg_(cfg), ds_(ds), config_yaml_(config_yaml), gen_(at::make_generator<at::CPUGeneratorImpl>(cfg.seed)) {
    if (ds.train.empty()) throw DataError(ds.root + ": the training split has no samples");
    torch::manual_seed(cfg.seed);
    val_c_ = data::make_candidates(ds, data::Split::kVal, cfg.eval.num_negatives, cfg.eval.candidate_seed);
    test_c_ = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
    train_ = data::to_tensors(ds.train, ds.num_items, cfg.encoder.max_len);
    model_ = encoder::make_encoder(cfg.encoder, ds.num_items);
    optimizer_ = std::make_unique<optim::FusedAdam>(
        model_->parameters(), torch::optim::AdamOptions(cfg.train.lr).weight_decay(cfg.train.weight_decay));
    // Every rank built the same initial model from cfg.seed; negatives and dropout differ per rank.
    if (group.size() > 1) torch::manual_seed(stream_key(cfg.seed, Purpose::kRankDraws, (uint64_t)group.rank()));
    objective_ = std::make_unique<EncoderObjective>(*model_, cfg.train.loss, &train_);
  }

  std::string name() const override { return "encoder"; }
  std::string model_name() const override { return encoder_name(cfg_.encoder.type); }
  uint64_t seed() const override { return cfg_.seed; }
  nlohmann::json describe() const override {
    return {{"model", encoder_name(cfg_.encoder.type)}, {"dataset", ds_.name}, {"seed", cfg_.seed}};
  }
  int64_t num_samples() const override { return train_.seq.size(0); }
  std::vector<int64_t> epoch_order(int64_t) override {
    auto perm = torch::randperm(num_samples(), gen_, torch::kInt64);
    return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + perm.numel());
  }
  void before_epoch(int64_t) override { model_->train(); }
  void seed_step(const StepContext&) override {}  // one stream per run (see the class comment)
  Objective& objective() override { return *objective_; }
  torch::optim::Optimizer& optimizer() override { return *optimizer_; }
  const std::vector<std::string>& group_names() const override { return names_; }
  const std::vector<double>& peak_lrs() const override { return peak_lr_; }

  eval::Metrics validate(dist::ProcessGroup&) override {
    return encoder::evaluate_encoder(*model_, ds_, data::Split::kVal, val_c_, cfg_.encoder.max_len, cfg_.eval.batch_size);
  }
  std::string eval_mode() const override { return "ranking"; }
  std::string summarize(const eval::Metrics& val) const override {
    return fmt::format("HR@1 {:.4f} NDCG@10 {:.4f}", val.hr1.value_or(0), val.ndcg10.value_or(0));
  }
  void save_checkpoint(const std::string& dir) override { encoder::save_encoder(dir, *model_, config_yaml_); }
  void load_checkpoint(const std::string& dir) override {
    auto best = encoder::load_encoder(dir, ds_.num_items);
    torch::NoGradGuard ng;
    auto from = best->named_parameters();
    for (auto& p : model_->named_parameters()) p.value().copy_(from[p.key()]);
  }
  nlohmann::json test(dist::ProcessGroup& group, Run&) override {
    if (!group.main()) return nlohmann::json::object();  // rank 0 tests and writes results.json
    test_ = encoder::evaluate_encoder(*model_, ds_, data::Split::kTest, test_c_, cfg_.encoder.max_len, cfg_.eval.batch_size);
    return test_.to_json();
  }
  bool resumable() const override { return false; }
  bool logs_steps() const override { return false; }
  std::string trainables_label() const override { return "encoder weights"; }
  const eval::Metrics& test_metrics() const { return test_; }

 private:
  const Config& cfg_;
  const data::Dataset& ds_;
  std::string config_yaml_;
  at::Generator gen_;
  std::vector<data::CandidateSet> val_c_, test_c_;
  data::SampleTensors train_;
  encoder::Encoder model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<EncoderObjective> objective_;
  std::vector<std::string> names_ = {"encoder"};
  std::vector<double> peak_lr_ = {cfg_.train.lr};
  eval::Metrics test_;
};

}  // namespace

double encoder_train_step(encoder::EncoderImpl& model, torch::optim::Optimizer& optimizer, EncoderLoss loss,
                          const torch::Tensor& seq, const torch::Tensor& lengths, const torch::Tensor& target,
                          dist::ProcessGroup* group, int64_t bucket_bytes) {
  EncoderObjective objective(model, loss, nullptr);
  std::vector<std::unique_ptr<MicroBatch>> micro;
  if (target.size(0) > 0) micro.push_back(EncoderObjective::make(seq, lengths, target));
  return optimizer_step(objective, optimizer, micro, /*max_grad_norm=*/0, group, bucket_bytes);
}

std::unique_ptr<Recipe> make_encoder_recipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml,
                                            dist::ProcessGroup& group) {
  return std::make_unique<EncoderRecipe>(cfg, ds, config_yaml, group);
}

EncoderTrainResult train_encoder(const Config& cfg, const data::Dataset& ds, Run& run, dist::ProcessGroup* group) {
  dist::ProcessGroup single;
  dist::ProcessGroup& g = group ? *group : single;
  apply_run_settings(cfg);
  EncoderRecipe recipe(cfg, ds, run.config_yaml(), g);
  LoopOptions o = loop_options(cfg.train, cfg.seed, cfg.dist.bucket_mb);
  o.accumulation = 1;
  o.max_steps = 0;
  o.max_grad_norm = 0;
  o.group = &g;
  EncoderTrainResult result;
  result.results = run_training(recipe, run, o);
  result.best_epoch = run.best_epoch();
  result.best_val = run.best();
  result.checkpoint_dir = run.checkpoint_dir();
  result.test = recipe.test_metrics();
  result.seconds = run.seconds();
  return result;
}

}  // namespace sbtrec::train
