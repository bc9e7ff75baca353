// The training loop on a fake recipe (a two-group linear model, a scripted validation): the loss
// windows after an early stop, one state save when --stop-after lands on an epoch's end, a policy's
// frozen groups, the stop-and-resume of a run equal to an uninterrupted one, and a recipe that does not
// save state refusing --stop-after.
#include "sbtrec/train/loop.h"

#include "../test_util.h"
#include "sbtrec/common/digest.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

using namespace sbtrec;

namespace {

struct FakeMicro : train::MicroBatch {
  torch::Tensor x, y;  // [B, 2], [B]
};

// y = a * x0 + b * x1, fitted by mean squared error: groups "a" and "b".
class FakeRecipe : public train::Recipe, public train::Objective {
 public:
  explicit FakeRecipe(std::vector<double> val_hr1 = {}, std::vector<std::string> frozen = {})
      : val_hr1_(std::move(val_hr1)), frozen_(std::move(frozen)) {
    a_ = torch::zeros({1}, torch::requires_grad());
    b_ = torch::zeros({1}, torch::requires_grad());
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{a_}, std::make_unique<torch::optim::SGDOptions>(0.1));
    groups.emplace_back(std::vector<torch::Tensor>{b_}, std::make_unique<torch::optim::SGDOptions>(0.1));
    opt_ = std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(0.1));
  }
  std::string name() const override { return "fake"; }
  std::string model_name() const override { return "Fake"; }
  uint64_t seed() const override { return 3; }
  nlohmann::json describe() const override { return {{"model", "fake"}, {"seed", 3}}; }
  int64_t num_samples() const override { return 8; }
  train::Objective& objective() override { return *this; }
  train::Policy policy() const override {
    return [f = frozen_](int64_t, int64_t) {
      train::StepPlan p;
      p.frozen_groups = f;
      return p;
    };
  }
  std::unique_ptr<train::MicroBatch> prepare(const train::StepContext&, const std::vector<int64_t>& rows) override {
    auto m = std::make_unique<FakeMicro>();
    auto r = torch::tensor(rows, torch::kFloat32);
    m->x = torch::stack({r / 8, 1 - r / 8}, 1);  // [B, 2]
    m->y = 2 * m->x.select(1, 0) - m->x.select(1, 1);
    m->units = m->throughput = (double)rows.size();
    return m;
  }
  torch::Tensor loss(train::MicroBatch& micro) override {
    auto& m = static_cast<FakeMicro&>(micro);
    auto l = (a_ * m.x.select(1, 0) + b_ * m.x.select(1, 1) - m.y).pow(2).mean();
    losses.push_back(l.item<double>());
    return l;
  }
  torch::optim::Optimizer& optimizer() override { return *opt_; }
  const std::vector<std::string>& group_names() const override { return names_; }
  const std::vector<double>& peak_lrs() const override { return lrs_; }
  eval::Metrics validate(dist::ProcessGroup&) override {
    eval::Metrics m;
    m.n = 8;
    m.hr1 = validations < val_hr1_.size() ? val_hr1_[validations] : 0.5;
    ++validations;
    return m;
  }
  std::string eval_mode() const override { return "scripted"; }
  void save_checkpoint(const std::string& dir) override {
    saved.push_back(dir);
    make_dirs(dir);
    torch::save(std::vector<torch::Tensor>{a_.detach(), b_.detach()}, dir + "/weights.pt");
  }
  void load_checkpoint(const std::string& dir) override {
    std::vector<torch::Tensor> w;
    torch::load(w, dir + "/weights.pt");
    torch::NoGradGuard ng;
    a_.copy_(w[0]);
    b_.copy_(w[1]);
  }
  nlohmann::json test(dist::ProcessGroup&, train::Run&) override {
    return {{"n", 8}, {"hr@1", 0.25}, {"a", a_.item<double>()}, {"b", b_.item<double>()}};
  }
  bool resumable() const override { return resumable_; }

  torch::Tensor a_, b_;
  std::vector<double> losses;
  std::vector<std::string> saved;
  size_t validations = 0;
  bool resumable_ = true;

 private:
  std::vector<double> val_hr1_;
  std::vector<std::string> frozen_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<std::string> names_ = {"a", "b"};
  std::vector<double> lrs_ = {0.1, 0.1};
};

Config config_in(const std::string& dir, std::vector<std::string> sets) {
  sets.push_back("output_dir=" + dir);
  return parse_config("", "x", sets);
}

train::LoopOptions options_of(const Config& c) { return train::loop_options(c.train, c.seed, c.dist.bucket_mb); }

int state_saves(const FakeRecipe& r) {
  int n = 0;
  for (const auto& d : r.saved) n += d.find("/state") != std::string::npos;
  return n;
}

}  // namespace

// Validation gets worse after epoch 1, patience 2: the run stops after epoch 3 of 10. first_loss and
// last_loss are the means of the first and last ten steps that ran, not 0 (they were written as 0
// when an early stop cut the schedule's last window off).
TEST(TrainingLoop, EarlyStopKeepsTheLossWindowsOfTheStepsThatRan) {
  test::TempDir tmp;
  const auto cfg = config_in(tmp / "run", {"train.epochs=10", "train.batch_size=1", "train.patience=2"});
  FakeRecipe recipe({0.9, 0.5, 0.4});
  train::Run run(cfg, false);
  const auto res = train::run_training(recipe, run, options_of(cfg));
  EXPECT_EQ(recipe.validations, 3u);
  EXPECT_EQ(res["best_epoch"], 1);
  EXPECT_EQ(res["steps"], 24);  // 3 epochs of 8 steps
  EXPECT_EQ(res["total_steps"], 80);
  ASSERT_EQ(recipe.losses.size(), 24u);
  double first = 0, last = 0;
  for (size_t i = 0; i < 10; ++i) first += recipe.losses[i], last += recipe.losses[14 + i];
  EXPECT_DOUBLE_EQ(res["first_loss"].get<double>(), first / 10);
  EXPECT_DOUBLE_EQ(res["last_loss"].get<double>(), last / 10);
  EXPECT_GT(res["last_loss"].get<double>(), 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(tmp / "run/results.json")), res);
  // Which build made the run: the loaded library by content, LibTorch, the CPU's vector extensions.
  const auto& b = res["build"];
  EXPECT_NE(b["library"].get<std::string>().find("libsbtrec"), std::string::npos) << b.dump();
  EXPECT_EQ(b["library_sha256"].get<std::string>().size(), 12u) << b.dump();
  EXPECT_EQ(b["library_sha256"], sha256_file(b["library"].get<std::string>()).substr(0, 12));
  EXPECT_FALSE(b["torch"].get<std::string>().empty());
  EXPECT_TRUE(b["cpu_flags"].is_array());
}

// --stop-after on an epoch's last step: the epoch's validation runs, then the state is saved once, as
// stopped (it was saved twice: at the epoch's end and again at the stop). Resuming finishes the run as
// an uninterrupted one does, weights and figures alike.
TEST(TrainingLoop, AStopOnAnEpochBoundarySavesTheStateOnceAndResumesExactly) {
  test::TempDir tmp;
  const std::vector<std::string> sets = {"train.epochs=3", "train.batch_size=4", "train.patience=5"};
  const auto cfg = config_in(tmp / "split", sets);
  FakeRecipe first;
  {
    train::Run run(cfg, false);
    auto o = options_of(cfg);
    o.stop_after = 2;  // 2 steps per epoch: the end of epoch 1
    const auto res = train::run_training(first, run, o);
    EXPECT_TRUE(res["stopped"].get<bool>());
  }
  EXPECT_EQ(state_saves(first), 1);
  const auto st = nlohmann::json::parse(read_file(tmp / "split/state/state.json"));
  EXPECT_TRUE(st["stopped"].get<bool>());
  EXPECT_EQ(st["step"], 2);

  FakeRecipe resumed;
  train::Run again = train::Run::resuming(cfg);
  auto o = options_of(cfg);
  o.resume = true;
  const auto state = train::read_resume_state(again, 1);
  const auto r1 = train::run_training(resumed, again, o, state);

  const auto whole_cfg = config_in(tmp / "whole", sets);
  FakeRecipe whole;
  train::Run run(whole_cfg, false);
  const auto r2 = train::run_training(whole, run, options_of(whole_cfg));
  EXPECT_EQ(r1["test"], r2["test"]);
  EXPECT_EQ(r1["first_loss"], r2["first_loss"]);
  EXPECT_EQ(r1["last_loss"], r2["last_loss"]);
  EXPECT_EQ(r1["best_epoch"], r2["best_epoch"]);
}

// A policy's frozen groups keep their values while the others train.
TEST(TrainingLoop, FrozenGroupsDoNotMove) {
  test::TempDir tmp;
  const auto cfg = config_in(tmp / "run", {"train.epochs=2", "train.batch_size=2"});
  FakeRecipe recipe({}, {"b"});
  train::Run run(cfg, false);
  train::run_training(recipe, run, options_of(cfg));
  EXPECT_NE(recipe.a_.item<double>(), 0.0);
  EXPECT_EQ(recipe.b_.item<double>(), 0.0);
}

// A recipe without training state refuses --stop-after (and --resume) before writing anything.
TEST(TrainingLoop, RecipesWithoutStateRefuseStopAfter) {
  test::TempDir tmp;
  const auto cfg = config_in(tmp / "run", {"train.epochs=2"});
  FakeRecipe recipe;
  recipe.resumable_ = false;
  train::Run run(cfg, false);
  auto o = options_of(cfg);
  o.stop_after = 1;
  EXPECT_THROW(train::run_training(recipe, run, o), ConfigError);
  EXPECT_FALSE(path_exists(tmp / "run"));
}
