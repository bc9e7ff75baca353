// The training loop every recipe runs on (see loop.h).
#include "sbtrec/train/loop.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <sstream>

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

nlohmann::json run_training(Recipe& recipe, Run& run, const LoopOptions& o, const nlohmann::json& resumed) {
  dist::ProcessGroup single;
  dist::ProcessGroup& group = o.group ? *o.group : single;
  const int W = group.size(), R = group.rank();
  run.set_writes(group.main());
  if ((o.resume || o.stop_after > 0) && !recipe.resumable())
    throw ConfigError("--resume and --stop-after apply to recipes that save training state; the " + recipe.name() +
                      " recipe does not (its runs are short)");
  auto& optimizer = recipe.optimizer();
  const auto& names = recipe.group_names();
  const auto& peak_lr = recipe.peak_lrs();
  auto& objective = recipe.objective();
  const auto policy = recipe.policy();

  const int64_t S = recipe.num_samples(), B = o.batch_size, A = o.accumulation;
  if (S <= 0) throw DataError("the training split has no samples");
  const int64_t G = B * W;  // samples of one micro-batch over all ranks
  const int64_t micro_per_epoch = (S + G - 1) / G;
  const int64_t steps_per_epoch = (micro_per_epoch + A - 1) / A;
  const int64_t total = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch;
  const int64_t epochs = (total + steps_per_epoch - 1) / steps_per_epoch;
  // first_loss / last_loss: the means of the first and the last `window` steps that ran (an early stop
  // ends the last window early; no step, no figure).
  const size_t window = (size_t)std::max<int64_t>(1, std::min<int64_t>(10, total / 4));
  int64_t step = 0;
  std::deque<double> first_losses, last_losses;
  double window_sum = 0;
  int64_t window_n = 0, throughput = 0, throughput_at_log = 0;
  auto log_time = std::chrono::steady_clock::now();
  const std::string state_dir = run.dir() + "/state";
  auto save = [&](const std::string& dir) { recipe.save_checkpoint(dir); };
  if (o.resume) {
    step = resumed.at("step").get<int64_t>();
    if (resumed.at("total_steps").get<int64_t>() != total)
      throw ConfigError("--resume: the run's schedule has " + std::to_string(resumed["total_steps"].get<int64_t>()) +
                        " steps, this config " + std::to_string(total));
    recipe.load_checkpoint(state_dir + "/checkpoint");
    torch::load(optimizer, state_dir + "/optimizer.pt");
    first_losses = resumed.at("first_losses").get<std::deque<double>>();
    last_losses = resumed.at("last_losses").get<std::deque<double>>();
    window_sum = resumed.at("window_sum");
    window_n = resumed.at("window_n");
    run.restore(resumed.at("best_epoch"), resumed.at("since_best"), eval::Metrics::from_json(resumed.at("best")));
    recipe.restore_extra_state(resumed.value("recipe", nlohmann::json::object()));
    // metrics.jsonl keeps what happened up to the saved state only.
    if (group.main()) {
      std::string kept, line;
      std::istringstream in(read_file(run.dir() + "/metrics.jsonl"));
      while (std::getline(in, line))
        if (!line.empty() && nlohmann::json::parse(line).value("step", (int64_t)0) <= step) kept += line + "\n";
      atomic_write_string(run.dir() + "/metrics.jsonl", kept);
    }
    spdlog::info("resuming {} at step {} of {}", run.dir(), step, total);
  }
  std::vector<torch::Tensor> trainables;
  std::vector<std::string> trainable_names;
  for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
    for (size_t i = 0; i < optimizer.param_groups()[g].params().size(); ++i) {
      trainables.push_back(optimizer.param_groups()[g].params()[i]);
      trainable_names.push_back(fmt::format("{} parameter {}", names.at(g), i));
    }
  group.barrier("start");  // every rank has checked the run directory before rank 0 writes into it
  run.start();
  auto check_identical = [&](const std::string& when) {
    if (W == 1) return;
    dist::check_identical(group, trainables, trainable_names, recipe.trainables_label() + " after " + when);
    spdlog::info("{} identical on {} ranks ({} tensors) after {}", recipe.trainables_label(), W, trainables.size(), when);
  };
  auto save_state = [&](bool stopped) {
    check_identical(fmt::format("step {}", step));
    if (!group.main()) return;
    atomic_write_dir(state_dir, [&](const std::string& d) {
      recipe.save_checkpoint(d + "/checkpoint");
      torch::save(optimizer, d + "/optimizer.pt");
      nlohmann::json j = {{"format", kStateFormat},         {"step", step},
                          {"total_steps", total},           {"best_epoch", run.best_epoch()},
                          {"since_best", run.since_best()}, {"best", run.best().to_json()},
                          {"first_losses", first_losses},   {"last_losses", last_losses},
                          {"window_sum", window_sum},       {"window_n", window_n},
                          {"stopped", stopped},             {"world_size", W},
                          {"run_id", run.run_id()},         {"recipe", recipe.extra_state()}};
      atomic_write_string(d + "/state.json", j.dump(2) + "\n");
    });
  };
  spdlog::info("recipe {}: {} on {} samples, batch {} x {} processes x {} accumulation, {} steps/epoch, {} steps ({} epochs)",
               recipe.name(), recipe.model_name(), S, B, W, A, steps_per_epoch, total, epochs);
  recipe.on_start(step, run, group);
  int64_t done = 0;
  bool early_stop = false;
  for (int64_t epoch = 1; epoch <= epochs && !early_stop; ++epoch) {
    const int64_t first = (epoch - 1) * steps_per_epoch, last = std::min(total, epoch * steps_per_epoch);
    if (step >= last) continue;  // finished before a resume
    const auto order = recipe.epoch_order(epoch);
    recipe.before_epoch(epoch);
    Progress progress = run.progress(fmt::format("epoch {}/{}", epoch, epochs), last - first, G * A);
    double epoch_sum = 0;
    int64_t epoch_n = 0;
    for (; step < last; ++step) {
      if (o.stop_after > 0 && done == o.stop_after) {
        progress.finish();
        save_state(true);
        spdlog::info("stopped after {} steps (step {} of {}); continue with --resume {}", done, step, total, run.dir());
        return {{"stopped", true}, {"step", step}, {"total_steps", total}, {"output_dir", run.dir()}};
      }
      const int64_t k = step - first;
      if (o.before_step) o.before_step(step + 1, R);
      StepContext ctx{epoch, step, total, k, R, W, policy(step, total)};
      recipe.seed_step(ctx);
      std::vector<std::unique_ptr<MicroBatch>> micro;
      for (int64_t a = 0; a < A; ++a) {
        const int64_t mb = k * A + a;
        if (mb * G >= S) break;
        const int64_t begin = mb * G + R * B, end = std::min(S, begin + B);
        if (begin >= end) continue;  // the epoch's tail leaves this rank nothing here; it still joins the step
        auto& m = micro.emplace_back(objective.prepare(ctx, std::vector<int64_t>(order.begin() + begin, order.begin() + end)));
        throughput += (int64_t)m->throughput;
      }
      const double f = recipe.schedule(step, total);
      for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
        optimizer.param_groups()[g].options().set_lr(peak_lr[g] * f);
      std::vector<size_t> frozen;
      for (const auto& name : ctx.plan.frozen_groups)
        for (size_t g = 0; g < names.size(); ++g)
          if (names[g] == name) frozen.push_back(g);
      const bool log_now = recipe.logs_steps() && ((step + 1) % o.log_every == 0 || step + 1 == total);
      GroupStats stats(optimizer, names, log_now && recipe.group_stats());
      const double loss = optimizer_step(objective, optimizer, micro, o.max_grad_norm, &group, o.bucket_bytes, frozen);
      if (!std::isfinite(loss))
        throw Error(fmt::format("step {}: the loss is {} (lower train.lr or set train.max_grad_norm)", step + 1, loss));
      ++done;
      if (first_losses.size() < window) first_losses.push_back(loss);
      last_losses.push_back(loss);
      if (last_losses.size() > window) last_losses.pop_front();
      window_sum += loss;
      ++window_n;
      epoch_sum += loss;
      ++epoch_n;
      progress.update(k + 1, epoch_sum / (double)epoch_n);
      if (log_now) {
        const auto now = std::chrono::steady_clock::now();
        const double all = group.all_reduce_sum((double)(throughput - throughput_at_log), "throughput for the log");
        const double rate = all / std::chrono::duration<double>(now - log_time).count();
        spdlog::info("step {}/{} loss {:.4f} lr {:.3g} {} {}/s", step + 1, total, window_sum / (double)window_n,
                     peak_lr.back() * f, format_rate(rate), objective.throughput_unit());
        nlohmann::json record = {{"epoch", epoch}, {"step", step + 1}, {"split", "train"}, {"loss", window_sum / (double)window_n},
                                 {"lr", peak_lr.back() * f}, {"hybrid_last", ctx.plan.hybrid},
                                 {std::string(objective.throughput_unit()) + "_per_s", rate}};
        stats.finish(record);
        run.log(record);
        log_time = now;
        throughput_at_log = throughput;
        window_sum = 0;
        window_n = 0;
      }
      recipe.after_step(ctx, run, group);
    }
    progress.finish();
    const double sps = progress.samples_per_second();
    spdlog::info("epoch {}: mean loss {:.4f}, {} samples/s", epoch, epoch_n ? epoch_sum / (double)epoch_n : 0.0,
                 format_rate(sps));
    if (!recipe.logs_steps())
      run.log({{"epoch", epoch}, {"step", step}, {"split", "train"}, {"loss", epoch_n ? epoch_sum / (double)epoch_n : 0.0},
               {"samples_per_s", sps}});
    if (run.validation_due((int)epoch) || step == total) {
      const auto val = recipe.validate(group);
      const bool improved = run.report_validation((int)epoch, step, val, save, recipe.eval_mode());
      spdlog::info("epoch {} val {}{}", epoch, recipe.summarize(val), improved ? " (best)" : "");
      if (run.should_stop()) {
        spdlog::info("early stop: no better validation {} for {} evaluations (best epoch {})", o.monitor, o.patience,
                     run.best_epoch());
        early_stop = true;
      }
    }
    // A stop that falls on this epoch's end saves the state once, as stopped, at the next step's check.
    const bool stopping_next = o.stop_after > 0 && done == o.stop_after && step < total && !early_stop;
    if (recipe.resumable() && !stopping_next)
      save_state(false);
    else if (!recipe.resumable())
      check_identical(fmt::format("epoch {}", epoch));
  }
  // No epoch ran (train.epochs 0): the initial model is the checkpoint, so evaluation still has one.
  if (run.best_epoch() < 0) run.report_validation(0, step, recipe.validate(group), save, recipe.eval_mode());

  // The best checkpoint: rank 0 reads it, the others receive its trainables.
  if (group.main()) recipe.load_checkpoint(run.checkpoint_dir());
  if (W > 1) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> values;
    for (auto& p : trainables) values.push_back(p.detach().clone());
    group.broadcast(values, 0, "best checkpoint");
    for (size_t i = 0; i < trainables.size(); ++i) trainables[i].detach().copy_(values[i]);
  }
  nlohmann::json results = recipe.describe();
  results["recipe"] = recipe.name();
  results["steps"] = step;
  results["total_steps"] = total;
  // Unmeasured figures are absent (no step ran: no loss).
  if (!first_losses.empty()) results["first_loss"] = mean(first_losses);
  if (!last_losses.empty()) results["last_loss"] = mean(last_losses);
  results["test"] = recipe.test(group, run);
  if (group.main()) {  // every result record says which split and evaluation it is
    results["test"]["split"] = "test";
    results["test"]["mode"] = recipe.eval_mode();
  }
  run.log(metrics_record(run.best_epoch(), step, "test", eval::Metrics::from_json(results["test"]), recipe.eval_mode()));
  return run.finish(std::move(results));
}

}  // namespace sbtrec::train
