// The training loop every recipe runs on (see loop.h).
#include "sbtrec/train/loop.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <sstream>

#include "sbtrec/common/build_info.h"
#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/progress.h"

namespace sbtrec::train {

namespace {

constexpr const char* kStateFormat = "sbtrec-train-state-2";  // 2: loss windows as lists, run id, recipe state

// The first line where two texts differ, for the --resume config check.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string l, r;
  for (int line = 1;; ++line) {
    const bool ga = (bool)std::getline(x, l), gb = (bool)std::getline(y, r);
    if (!ga && !gb) return "";
    if (!ga || !gb || l != r)
      return fmt::format("line {}: run has '{}', this config '{}'", line, ga ? l : "<end>", gb ? r : "<end>");
  }
}

// Per parameter group, at a logged step: the gradient norm and the size of the step's update relative
// to the weights (train.group_stats).
class GroupStats {
 public:
  GroupStats(torch::optim::Optimizer& opt, const std::vector<std::string>& names, bool on) : opt_(opt), names_(names) {
    if (!on) return;
    torch::NoGradGuard ng;
    for (auto& g : opt_.param_groups()) {
      std::vector<torch::Tensor> before;
      for (auto& p : g.params()) before.push_back(p.detach().clone());
      before_.push_back(std::move(before));
    }
  }
  // Adds {"grad_norm": {group: ..}, "update_ratio": {group: ..}} to `record` when on.
  void finish(nlohmann::json& record) const {
    if (before_.empty()) return;
    torch::NoGradGuard ng;
    nlohmann::json grad, update;
    for (size_t g = 0; g < before_.size(); ++g) {
      double g2 = 0, d2 = 0, w2 = 0;
      const auto& params = opt_.param_groups()[g].params();
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        if (p.grad().defined()) g2 += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
        d2 += (p.detach() - before_[g][i]).to(torch::kFloat64).pow(2).sum().item<double>();
        w2 += before_[g][i].to(torch::kFloat64).pow(2).sum().item<double>();
      }
      grad[names_[g]] = std::sqrt(g2);
      update[names_[g]] = w2 > 0 ? std::sqrt(d2 / w2) : 0.0;
    }
    record["grad_norm"] = grad;
    record["update_ratio"] = update;
  }

 private:
  torch::optim::Optimizer& opt_;
  const std::vector<std::string>& names_;
  std::vector<std::vector<torch::Tensor>> before_;
};

double mean(const std::deque<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / (double)v.size();
}

}  // namespace

std::vector<int64_t> Recipe::epoch_order(int64_t epoch) {
  return permutation(stream_key(seed(), Purpose::kEpochOrder, (uint64_t)epoch), num_samples());
}

void Recipe::seed_step(const StepContext& ctx) {
  // Dropout keyed by (seed, step, rank): one process draws what rank 0 of a world of one draws.
  torch::manual_seed(stream_key(seed(), Purpose::kStepDropout, (uint64_t)ctx.step * (uint64_t)ctx.world + (uint64_t)ctx.rank));
}

Policy Recipe::policy() const {
  return [](int64_t, int64_t) { return StepPlan{}; };
}

std::string Recipe::summarize(const eval::Metrics& val) const {
  return fmt::format("HR@1 {:.4f} (n {})", val.hr1.value_or(0), val.n);
}

LoopOptions loop_options(const TrainOptions& t, uint64_t seed, double bucket_mb) {
  LoopOptions o;
  o.seed = seed;
  o.batch_size = t.batch_size;
  o.accumulation = t.accumulation;
  o.epochs = t.epochs;
  o.max_steps = t.max_steps;
  o.max_grad_norm = t.max_grad_norm;
  o.log_every = t.log_every;
  o.patience = t.patience;
  o.monitor = t.monitor.empty() ? "" : t.monitor.front();
  o.bucket_bytes = (int64_t)(bucket_mb * (1 << 20));
  return o;
}

bool hybrid_step(const TrainOptions& o, uint64_t seed, int64_t step, int64_t total) {
  switch (o.paradigm) {
    case Paradigm::kSingleStage:
      return true;
    case Paradigm::kTwoStage:
      return (double)step >= o.two_stage_fraction * (double)total;
    case Paradigm::kCurriculum: {
      const double u = (double)(splitmix64(stream_key(seed, Purpose::kCurriculum, (uint64_t)step)) >> 11) * 0x1.0p-53;  // [0, 1)
      return u < (double)step / (double)std::max<int64_t>(1, total);
    }
  }
  return true;
}

Policy paradigm_policy(const TrainOptions& o, uint64_t seed) {
  return [o, seed](int64_t step, int64_t total) {
    StepPlan p;
    p.hybrid = hybrid_step(o, seed, step, total);
    return p;
  };
}

double optimizer_step(Objective& objective, torch::optim::Optimizer& optimizer,
                      const std::vector<std::unique_ptr<MicroBatch>>& micro, double max_grad_norm,
                      dist::ProcessGroup* group, int64_t bucket_bytes, const std::vector<size_t>& frozen) {
  optimizer.zero_grad();
  double local = 0;
  for (const auto& mb : micro) local += mb->units;
  const bool parallel = group && group->size() > 1;
  const double total = parallel ? group->all_reduce_sum(local, "unit count") : local;
  if (total <= 0) throw Error("training step: the global batch has nothing to learn from (no supervised units)");
  double loss = 0;
  for (const auto& mb : micro) {
    // this micro-batch's mean x its share of the global units = its unit sum / the global count
    auto l = objective.loss(*mb) * (mb->units / total);
    l.backward();
    loss += l.item<double>();
  }
  for (size_t g : frozen)
    for (auto& p : optimizer.param_groups().at(g).params()) p.mutable_grad() = torch::Tensor();
  std::vector<torch::Tensor> params;
  for (auto& g : optimizer.param_groups())
    for (auto& p : g.params()) params.push_back(p);
  if (parallel) {
    dist::all_reduce_gradients(*group, params, bucket_bytes);
    loss = group->all_reduce_sum(loss, "loss");
  }
  if (max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  optimizer.step();
  return loss;
}

nlohmann::json read_resume_state(Run& run, int world_size) {
  const std::string state_dir = run.dir() + "/state";
  if (!path_exists(state_dir + "/state.json"))
    throw ConfigError("--resume '" + run.dir() + "': no state/state.json (the run saved no training state yet)");
  auto state = nlohmann::json::parse(read_file(state_dir + "/state.json"));
  if (state.value("format", "") != kStateFormat)
    throw CheckpointError(state_dir + "/state.json: format '" + state.value("format", "") + "', expected " + kStateFormat);
  if (state.value("run_id", "") != run.run_id() || run.run_id().empty())
    throw ConfigError(fmt::format("--resume '{}': state/ belongs to another run (its run id '{}', this directory's "
                                  "run.json '{}'); it was left by an earlier run in this directory or copied in. "
                                  "Start afresh with --overwrite, or resume the run that wrote it",
                                  run.dir(), state.value("run_id", ""), run.run_id()));
  const std::string diff = first_difference(read_file(run.dir() + "/config.yaml"), run.config_yaml());
  if (!diff.empty())
    throw ConfigError("--resume '" + run.dir() + "': the config differs from the run's config.yaml (" + diff +
                      "); resume with --config " + run.dir() + "/config.yaml");
  const int saved_world = state.value("world_size", 1);
  if (saved_world != world_size)
    throw ConfigError(fmt::format("--resume '{}': the run was trained with world size {} and this launch has {} "
                                  "(each rank's share of a batch depends on it); resume with --nproc {} or the same "
                                  "launcher layout",
                                  run.dir(), saved_world, world_size, saved_world));
  return state;
}

namespace {

// One run of the loop: the schedule's arithmetic, the counters that the training state saves, and
// one method per part of the run.
class TrainingLoop {
 public:
  TrainingLoop(Recipe& recipe, Run& run, const LoopOptions& o, dist::ProcessGroup& group)
      : recipe_(recipe), run_(run), o_(o), group_(group), optimizer_(recipe.optimizer()), objective_(recipe.objective()),
        policy_(recipe.policy()), W_(group.size()), R_(group.rank()), S_(recipe.num_samples()), B_(o.batch_size),
        A_(o.accumulation), G_(B_ * W_), state_dir_(run.dir() + "/state") {
    if (S_ <= 0) throw DataError("the training split has no samples");
    const int64_t micro_per_epoch = (S_ + G_ - 1) / G_;
    steps_per_epoch_ = (micro_per_epoch + A_ - 1) / A_;
    total_ = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch_;
    epochs_ = (total_ + steps_per_epoch_ - 1) / steps_per_epoch_;
    window_ = (size_t)std::max<int64_t>(1, std::min<int64_t>(10, total_ / 4));
    for (size_t g = 0; g < optimizer_.param_groups().size(); ++g)
      for (size_t i = 0; i < optimizer_.param_groups()[g].params().size(); ++i) {
        trainables_.push_back(optimizer_.param_groups()[g].params()[i]);
        trainable_names_.push_back(fmt::format("{} parameter {}", recipe.group_names().at(g), i));
      }
  }

  nlohmann::json run(const nlohmann::json& resumed) {
    if (o_.resume) resume(resumed);
    group_.barrier("start");  // every rank has checked the run directory before rank 0 writes into it
    run_.start();
    spdlog::info("recipe {}: {} on {} samples, batch {} x {} processes x {} accumulation, {} steps/epoch, {} steps ({} epochs)",
                 recipe_.name(), recipe_.model_name(), S_, B_, W_, A_, steps_per_epoch_, total_, epochs_);
    recipe_.on_start(step_, run_, group_);
    for (int64_t epoch = 1; epoch <= epochs_ && !early_stop_; ++epoch) {
      const int64_t first = (epoch - 1) * steps_per_epoch_, last = std::min(total_, epoch * steps_per_epoch_);
      if (step_ >= last) continue;  // finished before a resume
      if (!run_epoch(epoch, first, last)) {
        spdlog::info("stopped after {} steps (step {} of {}); continue with --resume {}", done_, step_, total_, run_.dir());
        return {{"stopped", true}, {"step", step_}, {"total_steps", total_}, {"output_dir", run_.dir()}};
      }
    }
    return finish();
  }

 private:
  // The state of an interrupted run (read_resume_state's), put back: trainables, optimizer, counters,
  // early-stopping state, the recipe's own; metrics.jsonl cut back to the saved step.
  void resume(const nlohmann::json& state) {
    step_ = state.at("step").get<int64_t>();
    if (state.at("total_steps").get<int64_t>() != total_)
      throw ConfigError("--resume: the run's schedule has " + std::to_string(state["total_steps"].get<int64_t>()) +
                        " steps, this config " + std::to_string(total_));
    recipe_.load_checkpoint(state_dir_ + "/checkpoint");
    torch::load(optimizer_, state_dir_ + "/optimizer.pt");
    first_losses_ = state.at("first_losses").get<std::deque<double>>();
    last_losses_ = state.at("last_losses").get<std::deque<double>>();
    window_sum_ = state.at("window_sum");
    window_n_ = state.at("window_n");
    run_.restore(state.at("best_epoch"), state.at("since_best"), eval::Metrics::from_json(state.at("best")));
    recipe_.restore_extra_state(state.value("recipe", nlohmann::json::object()));
    if (group_.main()) {
      std::string kept, line;
      std::istringstream in(read_file(run_.dir() + "/metrics.jsonl"));
      while (std::getline(in, line))
        if (!line.empty() && nlohmann::json::parse(line).value("step", (int64_t)0) <= step_) kept += line + "\n";
      atomic_write_string(run_.dir() + "/metrics.jsonl", kept);
    }
    spdlog::info("resuming {} at step {} of {}", run_.dir(), step_, total_);
  }

  void check_identical(const std::string& when) {
    if (W_ == 1) return;
    dist::check_identical(group_, trainables_, trainable_names_, recipe_.trainables_label() + " after " + when);
    spdlog::info("{} identical on {} ranks ({} tensors) after {}", recipe_.trainables_label(), W_, trainables_.size(), when);
  }

  void save_state(bool stopped) {
    check_identical(fmt::format("step {}", step_));
    if (!group_.main()) return;
    atomic_write_dir(state_dir_, [&](const std::string& d) {
      recipe_.save_checkpoint(d + "/checkpoint");
      torch::save(optimizer_, d + "/optimizer.pt");
      nlohmann::json j = {{"format", kStateFormat},          {"step", step_},
                          {"total_steps", total_},           {"best_epoch", run_.best_epoch()},
                          {"since_best", run_.since_best()}, {"best", run_.best().to_json()},
                          {"first_losses", first_losses_},   {"last_losses", last_losses_},
                          {"window_sum", window_sum_},       {"window_n", window_n_},
                          {"stopped", stopped},              {"world_size", W_},
                          {"run_id", run_.run_id()},         {"recipe", recipe_.extra_state()}};
      atomic_write_string(d + "/state.json", j.dump(2) + "\n");
    });
  }

  // Steps [step_, last) of `epoch`, then its validation and state. False when --stop-after stopped it.
  bool run_epoch(int64_t epoch, int64_t first, int64_t last) {
    const auto order = recipe_.epoch_order(epoch);
    recipe_.before_epoch(epoch);
    Progress progress = run_.progress(fmt::format("epoch {}/{}", epoch, epochs_), last - first, G_ * A_);
    double epoch_sum = 0;
    int64_t epoch_n = 0;
    for (; step_ < last; ++step_) {
      if (o_.stop_after > 0 && done_ == o_.stop_after) {
        progress.finish();
        save_state(true);
        return false;
      }
      StepContext ctx{epoch, step_, total_, step_ - first, R_, W_, policy_(step_, total_)};
      const double loss = train_step(ctx, order);
      epoch_sum += loss;
      ++epoch_n;
      progress.update(ctx.index_in_epoch + 1, epoch_sum / (double)epoch_n);
      recipe_.after_step(ctx, run_, group_);
    }
    progress.finish();
    end_epoch(epoch, epoch_n ? epoch_sum / (double)epoch_n : 0.0, progress.samples_per_second());
    return true;
  }

  // One optimizer step of `ctx`: this rank's micro-batches of the epoch's `order`, the lr schedule,
  // the step, the loss windows and (at log steps) the train record.
  double train_step(const StepContext& ctx, const std::vector<int64_t>& order) {
    if (o_.before_step) o_.before_step(ctx.step + 1, R_);
    recipe_.seed_step(ctx);
    std::vector<std::unique_ptr<MicroBatch>> micro;
    for (int64_t a = 0; a < A_; ++a) {
      const int64_t mb = ctx.index_in_epoch * A_ + a;
      if (mb * G_ >= S_) break;
      const int64_t begin = mb * G_ + R_ * B_, end = std::min(S_, begin + B_);
      if (begin >= end) continue;  // the epoch's tail leaves this rank nothing here; it still joins the step
      auto& m = micro.emplace_back(objective_.prepare(ctx, std::vector<int64_t>(order.begin() + begin, order.begin() + end)));
      throughput_ += (int64_t)m->throughput;
    }
    const double f = recipe_.schedule(ctx.step, total_);
    for (size_t g = 0; g < optimizer_.param_groups().size(); ++g)
      optimizer_.param_groups()[g].options().set_lr(recipe_.peak_lrs()[g] * f);
    std::vector<size_t> frozen;
    for (const auto& name : ctx.plan.frozen_groups)
      for (size_t g = 0; g < recipe_.group_names().size(); ++g)
        if (recipe_.group_names()[g] == name) frozen.push_back(g);
    const bool log_now = recipe_.logs_steps() && ((ctx.step + 1) % o_.log_every == 0 || ctx.step + 1 == total_);
    GroupStats stats(optimizer_, recipe_.group_names(), log_now && recipe_.group_stats());
    const double loss = optimizer_step(objective_, optimizer_, micro, o_.max_grad_norm, &group_, o_.bucket_bytes, frozen);
    if (!std::isfinite(loss))
      throw Error(fmt::format("step {}: the loss is {} (lower train.lr or set train.max_grad_norm)", ctx.step + 1, loss));
    ++done_;
    if (first_losses_.size() < window_) first_losses_.push_back(loss);
    last_losses_.push_back(loss);
    if (last_losses_.size() > window_) last_losses_.pop_front();
    window_sum_ += loss;
    ++window_n_;
    if (log_now) log_step(ctx, recipe_.peak_lrs().back() * f, stats);
    return loss;
  }

  void log_step(const StepContext& ctx, double lr, const GroupStats& stats) {
    const auto now = std::chrono::steady_clock::now();
    const double all = group_.all_reduce_sum((double)(throughput_ - throughput_at_log_), "throughput for the log");
    const double rate = all / std::chrono::duration<double>(now - log_time_).count();
    const char* unit = objective_.throughput_unit();
    spdlog::info("step {}/{} loss {:.4f} lr {:.3g} {} {}/s", ctx.step + 1, total_, window_sum_ / (double)window_n_, lr,
                 format_rate(rate), unit);
    nlohmann::json record = {{"epoch", ctx.epoch}, {"step", ctx.step + 1}, {"split", "train"},
                             {"loss", window_sum_ / (double)window_n_}, {"lr", lr}, {"hybrid_last", ctx.plan.hybrid},
                             {std::string(unit) + "_per_s", rate}};
    stats.finish(record);
    run_.log(record);
    log_time_ = now;
    throughput_at_log_ = throughput_;
    window_sum_ = 0;
    window_n_ = 0;
  }

  // The epoch's record (recipes without step records), its validation and early stop, and the state
  // (saved once, as stopped, when a stop falls on this epoch's end: at the next step's check).
  void end_epoch(int64_t epoch, double mean_loss, double samples_per_s) {
    spdlog::info("epoch {}: mean loss {:.4f}, {} samples/s", epoch, mean_loss, format_rate(samples_per_s));
    if (!recipe_.logs_steps())
      run_.log({{"epoch", epoch}, {"step", step_}, {"split", "train"}, {"loss", mean_loss}, {"samples_per_s", samples_per_s}});
    if (run_.validation_due((int)epoch) || step_ == total_) {
      const auto val = recipe_.validate(group_);
      const bool improved = run_.report_validation((int)epoch, step_, val, save_, recipe_.eval_mode());
      spdlog::info("epoch {} val {}{}", epoch, recipe_.summarize(val), improved ? " (best)" : "");
      if (run_.should_stop()) {
        spdlog::info("early stop: no better validation {} for {} evaluations (best epoch {})", o_.monitor, o_.patience,
                     run_.best_epoch());
        early_stop_ = true;
      }
    }
    const bool stopping_next = o_.stop_after > 0 && done_ == o_.stop_after && step_ < total_ && !early_stop_;
    if (recipe_.resumable() && !stopping_next)
      save_state(false);
    else if (!recipe_.resumable())
      check_identical(fmt::format("epoch {}", epoch));
  }

  // The best checkpoint (the initial model when no epoch ran) on every rank, tested; results.json.
  nlohmann::json finish() {
    if (run_.best_epoch() < 0) run_.report_validation(0, step_, recipe_.validate(group_), save_, recipe_.eval_mode());
    if (group_.main()) recipe_.load_checkpoint(run_.checkpoint_dir());  // rank 0 reads it, the others receive it
    if (W_ > 1) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> values;
      for (auto& p : trainables_) values.push_back(p.detach().clone());
      group_.broadcast(values, 0, "best checkpoint");
      for (size_t i = 0; i < trainables_.size(); ++i) trainables_[i].detach().copy_(values[i]);
    }
    nlohmann::json results = recipe_.describe();
    results["recipe"] = recipe_.name();
    results["build"] = build_info();  // which binary made the run (a study may span rebuilds)
    results["steps"] = step_;
    results["total_steps"] = total_;
    // Unmeasured figures are absent (no step ran: no loss).
    if (!first_losses_.empty()) results["first_loss"] = mean(first_losses_);
    if (!last_losses_.empty()) results["last_loss"] = mean(last_losses_);
    results["test"] = recipe_.test(group_, run_);
    if (group_.main()) {  // every result record says which split and evaluation it is
      results["test"]["split"] = "test";
      results["test"]["mode"] = recipe_.eval_mode();
    }
    run_.log(metrics_record(run_.best_epoch(), step_, "test", eval::Metrics::from_json(results["test"]), recipe_.eval_mode()));
    return run_.finish(std::move(results));
  }

  Recipe& recipe_;
  Run& run_;
  const LoopOptions& o_;
  dist::ProcessGroup& group_;
  torch::optim::Optimizer& optimizer_;
  Objective& objective_;
  Policy policy_;
  const int W_, R_;
  const int64_t S_, B_, A_, G_;
  const std::string state_dir_;
  int64_t steps_per_epoch_ = 1, total_ = 0, epochs_ = 0;
  size_t window_ = 1;  // first_loss / last_loss: the means of the first and last `window_` steps that ran
  int64_t step_ = 0, done_ = 0;
  std::deque<double> first_losses_, last_losses_;
  double window_sum_ = 0;
  int64_t window_n_ = 0, throughput_ = 0, throughput_at_log_ = 0;
  std::chrono::steady_clock::time_point log_time_ = std::chrono::steady_clock::now();
  bool early_stop_ = false;
  std::vector<torch::Tensor> trainables_;
  std::vector<std::string> trainable_names_;
  std::function<void(const std::string&)> save_ = [this](const std::string& dir) { recipe_.save_checkpoint(dir); };
};

}  // namespace

nlohmann::json run_training(Recipe& recipe, Run& run, const LoopOptions& o, const nlohmann::json& resumed) {
  dist::ProcessGroup single;
  dist::ProcessGroup& group = o.group ? *o.group : single;
  run.set_writes(group.main());
  if ((o.resume || o.stop_after > 0) && !recipe.resumable())
    throw ConfigError("--resume and --stop-after apply to recipes that save training state; the " + recipe.name() +
                      " recipe does not (its runs are short)");
  return TrainingLoop(recipe, run, o, group).run(resumed);
}

}  // namespace sbtrec::train
