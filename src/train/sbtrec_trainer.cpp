// SBT-Rec's supervised fine-tuning (SBS-AO) as a recipe on the training loop (see sbtrec_trainer.h).
#include "sbtrec/train/sbtrec_trainer.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/nn/parameters.h"
#include "sbtrec/optim/fused_adam.h"
#include "sbtrec/quantizer/hdsd.h"
#include "sbtrec/train/preference.h"

namespace sbtrec::train {

namespace {

std::vector<torch::Tensor> group_params(SbtRecModelImpl& m, const std::string& group) {
  std::vector<torch::Tensor> out;
  if (group == "codebooks") {
    if (m.hdsd)
      for (auto& p : m.hdsd->parameters()) out.push_back(p);
  } else if (group == "aligner") {
    for (auto& p : m.item_aligner->parameters()) out.push_back(p);
    if (m.user_aligner)
      for (auto& p : m.user_aligner->parameters()) out.push_back(p);
  } else {
    for (auto& p : m.llm->parameters())
      if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

// quantizer.dead_codes: after each optimizer step, each quantizer ends its window on the counts summed
// over the ranks, re-seeding from all vectors of its kind (item rows; the training split's user vectors).
void end_step_dead_codes(SbtRecSession& s, dist::ProcessGroup& group) {
  auto& h = s.model->hdsd;
  if (!h || !s.cfg.quantizer.dead_codes.enabled) return;
  auto sum = [&](torch::Tensor& counts) {
    if (group.size() == 1) return;
    std::vector<torch::Tensor> t = {counts.to(torch::kFloat64).to(group.device())};
    group.all_reduce_sum(t, "dead-code counts");
    counts = t[0].cpu().round().to(torch::kInt64);
  };
  if (h->items) h->items->end_step(s.model->item_vectors, sum);
  if (h->user && s.user_vectors[0].defined()) h->user->end_step(s.user_vectors[0], sum);
}
nlohmann::json dead_code_state(const SbtRecModelImpl& m) {
  nlohmann::json j = nlohmann::json::object();
  if (m.hdsd && m.hdsd->items) j["items"] = m.hdsd->items->dead_code_state();
  if (m.hdsd && m.hdsd->user) j["user"] = m.hdsd->user->dead_code_state();
  return j;
}
void restore_dead_code_state(SbtRecModelImpl& m, const nlohmann::json& j) {
  if (m.hdsd && m.hdsd->items && j.contains("items")) m.hdsd->items->restore_dead_code_state(j["items"]);
  if (m.hdsd && m.hdsd->user && j.contains("user")) m.hdsd->user->restore_dead_code_state(j["user"]);
}

int64_t count(const std::vector<torch::Tensor>& ps) {
  int64_t n = 0;
  for (const auto& p : ps) n += p.numel();
  return n;
}

// One rank's share of a micro-batch: its prompts with the answers as labels, and their user vectors.
struct SftMicro : MicroBatch {
  prompt::PromptBatch batch;
  torch::Tensor users;  // [B, Z] or undefined
};

// SFT's loss: the mean cross entropy of the answer tokens (plus HDSD's auxiliary losses when weighted),
// the units being the supervised tokens (labels predicted from the previous position). On its own it
// takes given micro-batches (sbtrec_step); SftObjective prepares them from the training split.
class SftLoss : public Objective {
 public:
  explicit SftLoss(SbtRecModelImpl& m) : m_(m) {}
  std::unique_ptr<MicroBatch> prepare(const StepContext&, const std::vector<int64_t>&) override {
    throw Error("sbtrec_step: micro-batches are given, not prepared");
  }
  torch::Tensor loss(MicroBatch& micro) override {
    auto& m = static_cast<SftMicro&>(micro);
    return m_.loss(m.batch, m.users);
  }
  const char* throughput_unit() const override { return "tokens"; }
  static double units(const prompt::PromptBatch& b) { return (double)b.labels.slice(1, 1).ne(-100).sum().item<int64_t>(); }

 private:
  SbtRecModelImpl& m_;
};

class SftObjective : public SftLoss {
 public:
  explicit SftObjective(SbtRecSession& s) : SftLoss(*s.model), s_(s) {}
  void set_epoch_candidates(std::vector<data::CandidateSet> c) { candidates_ = std::move(c); }

  std::unique_ptr<MicroBatch> prepare(const StepContext& ctx, const std::vector<int64_t>& rows) override {
    // One template per optimizer step, whatever the split into micro-batches and ranks.
    const size_t tmpl = prompt::training_template(s_.cfg.seed, ctx.epoch, ctx.index_in_epoch, s_.builder->num_templates());
    std::vector<const data::CandidateSet*> cands;
    for (int64_t r : rows) cands.push_back(&candidates_[(size_t)r]);
    auto m = std::make_unique<SftMicro>();
    m->batch = s_.batch(data::Split::kTrain, rows, cands, std::vector<size_t>(rows.size(), tmpl), ctx.plan.hybrid, true, false);
    m->users = s_.users(data::Split::kTrain, rows);
    m->units = units(m->batch);
    m->throughput = (double)m->batch.attention_mask.sum().item<int64_t>();
    return m;
  }

 private:
  SbtRecSession& s_;
  std::vector<data::CandidateSet> candidates_;  // the epoch's training candidate sets
};

// dpo / sdpo: each case's prompt (no answer) and its answers, the target's first, then k other
// candidates' (drawn per case from the seeded stream), as answer ids.
struct PreferenceMicro : MicroBatch {
  prompt::PromptBatch prompts;  // right-padded, without answers
  torch::Tensor users;          // [B, Z] or undefined
  std::vector<std::vector<std::vector<int64_t>>> answers;  // [B][1 + k][tokens]
};

// The preference objective (train/preference.h): per case log pi(answer | prompt) of the chosen and
// rejected answers under the policy (with gradient) and the frozen reference (without), each from one
// forward of the prompt with its answers packed after it (llm/shared_prompt.h); the units are cases.
class PreferenceObjective : public Objective {
 public:
  PreferenceObjective(SbtRecSession& policy, SbtRecSession& reference, int negatives, double beta)
      : s_(policy), ref_(reference), k_(negatives), beta_(beta) {}
  void set_epoch_candidates(std::vector<data::CandidateSet> c) { candidates_ = std::move(c); }

  std::unique_ptr<MicroBatch> prepare(const StepContext& ctx, const std::vector<int64_t>& rows) override {
    const size_t tmpl = prompt::training_template(s_.cfg.seed, ctx.epoch, ctx.index_in_epoch, s_.builder->num_templates());
    auto m = std::make_unique<PreferenceMicro>();
    std::vector<const data::CandidateSet*> cands;
    const int64_t N = (int64_t)candidates_.size();
    for (int64_t r : rows) {
      const auto& cs = candidates_[(size_t)r];
      cands.push_back(&cs);
      std::vector<int64_t> others;  // candidate positions other than the target's
      for (int64_t c = 0; c < (int64_t)cs.items.size(); ++c)
        if (c != cs.target_index) others.push_back(c);
      if ((int64_t)others.size() < k_)
        throw ConfigError("train.preference.negatives=" + std::to_string(k_) + " but a case has " +
                          std::to_string(others.size()) + " other candidates (eval.num_negatives); lower it");
      CounterStream rng(stream_key(s_.cfg.seed, Purpose::kPreferenceNegatives, (uint64_t)(ctx.epoch * N + r)));
      for (int64_t j = 0; j < k_; ++j) std::swap(others[(size_t)j], others[(size_t)j + rng.below(others.size() - j)]);
      others.resize((size_t)k_);  // the k drawn
      m->answers.push_back(preference_answers(*s_.builder, *s_.ds, cs, others));
    }
    m->prompts = s_.batch(data::Split::kTrain, rows, cands, std::vector<size_t>(rows.size(), tmpl), ctx.plan.hybrid, false, false);
    m->users = s_.users(data::Split::kTrain, rows);
    m->units = (double)rows.size();
    m->throughput = (double)rows.size();
    return m;
  }
  torch::Tensor loss(MicroBatch& micro) override {
    auto& m = static_cast<PreferenceMicro&>(micro);
    const auto scores = preference_scores(*s_.model, *ref_.model, m.prompts, m.users, m.answers);  // [B, 1 + k] each
    return sdpo_loss(scores.policy, scores.reference, beta_);
  }
  const char* throughput_unit() const override { return "samples"; }

 private:
  SbtRecSession& s_;
  SbtRecSession& ref_;
  int k_;
  double beta_;
  std::vector<data::CandidateSet> candidates_;
};

// The SFT recipe: SBS-AO over the codebooks, aligner and LoRA groups of one SBT-Rec session, under the
// paradigm's policy and LLaRA's schedule; validation by the configured evaluator, learning-curve
// points by likelihood (train.curve_every), the dead-code reset after each step.
class SftRecipe : public Recipe {
 public:
  SftRecipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml, dist::ProcessGroup& group,
            bool fit_codebooks)
      : cfg_(cfg), ds_(ds), config_yaml_(config_yaml) {
    if (ds.train.empty()) throw DataError(ds.root + ": the training split has no samples");
    val_c_ = data::make_candidates(ds, data::Split::kVal, cfg.eval.num_negatives, cfg.eval.candidate_seed);
    test_c_ = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
    // Each rank's device (cuda:LOCAL_RANK when the config names CUDA without an index); the run's
    // config.yaml keeps what the user wrote.
    Config rank_cfg = cfg;
    rank_cfg.llm.device = dist::rank_device(cfg.llm.device, group.world()).str();
    // train.init_from: the policy starts from an SBT-Rec checkpoint (its codebooks, not a fresh fit); a
    // resumed run restores its own state instead. dpo / sdpo: the same checkpoint, frozen, is the reference.
    const bool preference = cfg.train.objective != TrainObjective::kSft;
    const std::string objective_name = config::choice_name(objectives(), cfg.train.objective);
    if (preference && cfg.train.init_from.empty())
      throw ConfigError("train.objective " + objective_name + " needs train.init_from: the SFT run (or its checkpoint/) "
                        "that starts the policy and is the frozen reference");
    const std::string init = cfg.train.init_from.empty() ? "" : resolve_checkpoint_dir(cfg.train.init_from, "sbtrec.safetensors");
    s_ = build_sbtrec(rank_cfg, ds, fit_codebooks && init.empty());
    if (!init.empty() && fit_codebooks) {
      load_sbtrec_checkpoint(init, s_);
      spdlog::info("policy initialised from {}", init);
    }
    if (preference) {
      ref_ = build_sbtrec(rank_cfg, ds, false);
      load_sbtrec_checkpoint(init, ref_);
      freeze_as_reference(*ref_.model, *s_.model);
      const int k = cfg.train.objective == TrainObjective::kDpo ? 1 : cfg.train.preference.negatives;
      preference_ = std::make_unique<PreferenceObjective>(s_, ref_, k, cfg.train.preference.beta);
      spdlog::info("objective {}: the target's answer against {} other candidate{}, beta {:g}, reference {} (frozen)",
                   objective_name, k, k == 1 ? "" : "s", cfg.train.preference.beta, init);
    } else {
      objective_ = std::make_unique<SftObjective>(s_);
    }
    optimizer_ = make_sbtrec_optimizer(cfg.train, *s_.model, peak_lr_, names_);
    for (size_t g = 0; g < names_.size(); ++g)
      spdlog::info("parameter group {}: {} parameters, lr {:g}", names_[g], count(optimizer_->param_groups()[g].params()),
                   peak_lr_[g]);
    spdlog::info("{} (codebooks, aligners and LoRA)", nn::trainable_report(*s_.model));
  }

  std::string name() const override { return "sft"; }
  std::string model_name() const override { return "SBT-Rec"; }
  uint64_t seed() const override { return cfg_.seed; }
  nlohmann::json describe() const override {
    return {{"model", "sbtrec"}, {"dataset", ds_.name}, {"seed", cfg_.seed},
            {"paradigm", config::choice_name(paradigms(), cfg_.train.paradigm)},
            {"objective", config::choice_name(objectives(), cfg_.train.objective)}};
  }
  int64_t num_samples() const override { return (int64_t)ds_.train.size(); }
  void before_epoch(int64_t epoch) override {
    auto c = data::make_candidates(ds_, data::Split::kTrain, cfg_.eval.num_negatives,
                                   stream_key(cfg_.seed, Purpose::kEpochCandidates, (uint64_t)epoch));
    if (preference_) preference_->set_epoch_candidates(std::move(c));
    else objective_->set_epoch_candidates(std::move(c));
  }
  Objective& objective() override { return preference_ ? (Objective&)*preference_ : (Objective&)*objective_; }
  Policy policy() const override {
    auto paradigm = paradigm_policy(cfg_.train, cfg_.seed);
    return [paradigm, hybrid = cfg_.prompt.hybrid](int64_t step, int64_t total) {
      auto plan = paradigm(step, total);
      plan.hybrid = plan.hybrid && hybrid;  // a text-only run (prompt.hybrid false) stays text-only
      return plan;
    };
  }
  torch::optim::Optimizer& optimizer() override { return *optimizer_; }
  const std::vector<std::string>& group_names() const override { return names_; }
  const std::vector<double>& peak_lrs() const override { return peak_lr_; }
  double schedule(int64_t step, int64_t total) const override { return schedule_factor(cfg_.train, step, total); }

  void on_start(int64_t step, Run& run, dist::ProcessGroup& group) override {
    s_.model->train();
    if (cfg_.train.curve_every > 0 && step == 0) curve_point(0, 0, run, group);
  }
  void after_step(const StepContext& ctx, Run& run, dist::ProcessGroup& group) override {
    end_step_dead_codes(s_, group);
    if (cfg_.train.curve_every > 0 && (ctx.step + 1) % cfg_.train.curve_every == 0)
      curve_point(ctx.step + 1, ctx.epoch, run, group);
  }

  eval::Metrics validate(dist::ProcessGroup& group) override {
    return eval::evaluate_sbtrec(s_, data::Split::kVal, val_c_, &group).metrics;
  }
  std::string eval_mode() const override { return cfg_.eval.mode; }
  std::string summarize(const eval::Metrics& val) const override {
    return fmt::format("HR@1 {:.4f} ValidRatio {:.4f} (n {})", val.hr1.value_or(0), val.valid_ratio.value_or(0), val.n);
  }
  void save_checkpoint(const std::string& dir) override { save_sbtrec_checkpoint(dir, s_, config_yaml_); }
  void load_checkpoint(const std::string& dir) override { load_sbtrec_checkpoint(dir, s_); }
  nlohmann::json test(dist::ProcessGroup& group, Run& run) override {
    const auto test = eval::evaluate_sbtrec(s_, data::Split::kTest, test_c_, &group);
    if (group.main()) eval::write_predictions(run.dir() + "/predictions.jsonl", s_, test, test_c_);
    return test.to_json();
  }
  nlohmann::json extra_state() const override { return {{"dead_codes", dead_code_state(*s_.model)}}; }
  void restore_extra_state(const nlohmann::json& state) override {
    restore_dead_code_state(*s_.model, state.value("dead_codes", nlohmann::json::object()));
  }
  bool group_stats() const override { return cfg_.train.group_stats; }

 private:
  // A learning-curve point: the first curve_cases validation cases scored by candidate likelihood
  // (with eval.token_reliance, also with the tokens moved), logged as split val_curve.
  void curve_point(int64_t at_step, int64_t epoch, Run& run, dist::ProcessGroup& group) {
    const auto e = eval::evaluate_sbtrec(s_, data::Split::kVal, val_c_, &group, {"likelihood", cfg_.train.curve_cases});
    auto record = e.to_json();
    record["epoch"] = epoch;
    record["step"] = at_step;
    record["split"] = "val_curve";
    run.log(record);
    spdlog::info("step {} curve: val likelihood HR@1 {:.4f} HR@5 {:.4f} (n {}){}", at_step, e.metrics.hr1.value_or(0),
                 e.metrics.hr5.value_or(0), e.metrics.n,
                 record.contains("rank_shift_permuted")
                     ? fmt::format(", tokens permuted HR@1 {:.4f}, rank shift {:.2f}",
                                   record["hr@1_tokens_permuted"].get<double>(), record["rank_shift_permuted"].get<double>())
                     : std::string());
  }

  const Config& cfg_;
  const data::Dataset& ds_;
  std::string config_yaml_;
  std::vector<data::CandidateSet> val_c_, test_c_;
  SbtRecSession s_;
  SbtRecSession ref_;  // dpo / sdpo: the frozen reference (sharing s_'s base weights)
  std::unique_ptr<SftObjective> objective_;
  std::unique_ptr<PreferenceObjective> preference_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<double> peak_lr_;
  std::vector<std::string> names_;
};

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_sbtrec_optimizer(const TrainOptions& t, SbtRecModelImpl& m,
                                                               std::vector<double>& peak_lr, std::vector<std::string>& names) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const std::pair<const char*, const ParamGroupOptions*> spec[] = {
      {"codebooks", &t.codebooks}, {"aligner", &t.aligner}, {"lora", &t.lora}};
  for (const auto& [name, g] : spec) {
    auto params = group_params(m, name);
    if (params.empty()) continue;
    const double lr = g->lr > 0 ? g->lr : t.lr;
    peak_lr.push_back(lr);
    names.push_back(name);
    if (t.optimizer == OptimizerType::kAdamW)
      groups.emplace_back(params, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(lr).weight_decay(g->weight_decay)));
    else
      groups.emplace_back(params, std::make_unique<torch::optim::AdamOptions>(
                                      torch::optim::AdamOptions(lr).weight_decay(g->weight_decay)));
  }
  if (groups.empty()) throw ConfigError("SBT-Rec trainer: nothing to train (no codebooks, aligner or LoRA parameters)");
  if (t.optimizer == OptimizerType::kAdamW)
    return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(t.lr));
  return std::make_unique<optim::FusedAdam>(std::move(groups), torch::optim::AdamOptions(t.lr));
}

double schedule_factor(const TrainOptions& o, int64_t step, int64_t total) {
  const double lo = o.min_lr_ratio;
  const int64_t warmup = (int64_t)std::floor(o.warmup_ratio * (double)total);
  if (step < warmup) return lo + (1.0 - lo) * (double)step / (double)warmup;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, (double)(step - warmup) / (double)span);
  return lo + (1.0 - lo) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

double sbtrec_step(SbtRecModelImpl& model, torch::optim::Optimizer& optimizer,
                   const std::vector<std::pair<prompt::PromptBatch, torch::Tensor>>& micro, double max_grad_norm,
                   dist::ProcessGroup* group, int64_t bucket_bytes) {
  SftLoss objective(model);
  std::vector<std::unique_ptr<MicroBatch>> micros;
  for (const auto& [batch, users] : micro) {
    auto m = std::make_unique<SftMicro>();
    m->batch = batch;
    m->users = users;
    m->units = SftLoss::units(batch);
    micros.push_back(std::move(m));
  }
  return optimizer_step(objective, optimizer, micros, max_grad_norm, group, bucket_bytes);
}

std::unique_ptr<Recipe> make_sft_recipe(const Config& cfg, const data::Dataset& ds, const std::string& config_yaml,
                                        dist::ProcessGroup& group, bool fit_codebooks) {
  return std::make_unique<SftRecipe>(cfg, ds, config_yaml, group, fit_codebooks);
}

nlohmann::json train_sbtrec(const Config& cfg, const data::Dataset& ds, Run& run, const SbtRecTrainOptions& options) {
  dist::ProcessGroup single;
  dist::ProcessGroup& group = options.group ? *options.group : single;
  // Everything that can fail on the inputs happens before the run directory is written.
  apply_run_settings(cfg);
  const nlohmann::json resumed = options.resume ? read_resume_state(run, group.size()) : nlohmann::json();
  SftRecipe recipe(cfg, ds, run.config_yaml(), group, /*fit_codebooks=*/!options.resume);
  LoopOptions o = loop_options(cfg.train, cfg.seed, cfg.dist.bucket_mb);
  o.resume = options.resume;
  o.stop_after = options.stop_after;
  o.group = &group;
  o.before_step = options.before_step;
  return run_training(recipe, run, o, resumed);
}

}  // namespace sbtrec::train
