// c10d process groups (Gloo on CPU) with two ranks as two threads of this process: the environment
// contract, bucketed gradient sums (parameters without a gradient anywhere stay without one), the
// store gather, the identity check, and a clear error instead of a hang when a peer is gone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "sbtrec/common/error.h"
#include "sbtrec/dist/launch.h"
#include "sbtrec/dist/process_group.h"

using namespace sbtrec;

namespace {

struct EnvGuard {
  std::vector<std::string> names;
  void set(const std::string& k, const std::string& v) {
    ::setenv(k.c_str(), v.c_str(), 1);
    names.push_back(k);
  }
  ~EnvGuard() {
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

// Runs body(group) on ranks 0 and 1 concurrently; returns each rank's error text ("" if none).
std::array<std::string, 2> two_ranks(const std::function<void(dist::ProcessGroup&)>& body, double timeout_s = 30) {
  dist::World w;
  w.world_size = w.local_world_size = 2;
  w.master_port = dist::free_local_port();
  dist::DistOptions o;
  o.timeout_s = timeout_s;
  std::array<std::string, 2> err;
  auto rank = [&](int r) {
    try {
      dist::World mine = w;
      mine.rank = mine.local_rank = r;
      dist::ProcessGroup g(mine, o, torch::kCPU);
      body(g);
    } catch (const std::exception& e) {
      err[(size_t)r] = e.what();
      if (err[(size_t)r].empty()) err[(size_t)r] = "error";
    }
  };
  std::thread t0(rank, 0), t1(rank, 1);
  t0.join();
  t1.join();
  return err;
}

}  // namespace

TEST(DistWorld, FromEnvironment) {
  {
    EnvGuard g;
    ::unsetenv("WORLD_SIZE");
    EXPECT_FALSE(dist::world_from_env().distributed());
  }
  {
    EnvGuard g;
    g.set("WORLD_SIZE", "4");
    g.set("RANK", "3");
    g.set("LOCAL_RANK", "1");
    g.set("MASTER_ADDR", "node7");
    g.set("MASTER_PORT", "29511");
    const auto w = dist::world_from_env();
    EXPECT_EQ(w.world_size, 4);
    EXPECT_EQ(w.rank, 3);
    EXPECT_EQ(w.local_rank, 1);
    EXPECT_EQ(w.master_addr, "node7");
    EXPECT_EQ(w.master_port, 29511);
    EXPECT_EQ(dist::rank_device("cuda", w).str(), "cuda:1");
    EXPECT_EQ(dist::rank_device("cuda:0", w).str(), "cuda:0");
    EXPECT_EQ(dist::rank_device("cpu", w).str(), "cpu");
  }
  {
    EnvGuard g;
    g.set("WORLD_SIZE", "2");
    g.set("MASTER_ADDR", "127.0.0.1");
    g.set("MASTER_PORT", "29500");
    try {
      dist::world_from_env();
      FAIL() << "RANK missing was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("RANK"), std::string::npos) << e.what();
    }
    g.set("RANK", "2");
    EXPECT_THROW(dist::world_from_env(), ConfigError);  // out of [0, WORLD_SIZE)
  }
}

// NCCL's collective tensors live on this rank's GPU: cuda:LOCAL_RANK, never the bare "cuda" (= cuda:0
// on every rank, where ranks collide or hang); Gloo's on the CPU. Device objects only: no GPU needed.
TEST(DistWorld, CollectivesLiveOnTheRanksDevice) {
  dist::World w;
  w.world_size = w.local_world_size = 4;
  w.rank = w.local_rank = 3;
  EXPECT_EQ(dist::collective_device("nccl", dist::rank_device("cuda", w)).str(), "cuda:3");
  EXPECT_EQ(dist::collective_device("gloo", dist::rank_device("cpu", w)).str(), "cpu");
  EXPECT_THROW(dist::collective_device("nccl", torch::Device("cuda")), ConfigError);
  EXPECT_THROW(dist::collective_device("nccl", torch::Device("cpu")), ConfigError);
  EXPECT_EQ(dist::ProcessGroup().device().str(), "cpu");
}

TEST(DistProcessGroup, SingleProcessCollectivesAreNoOps) {
  dist::ProcessGroup g;
  std::vector<torch::Tensor> t = {torch::ones({3})};
  g.all_reduce_sum(t, "x");
  EXPECT_TRUE(torch::equal(t[0], torch::ones({3})));
  EXPECT_EQ(g.all_reduce_sum(2.5, "x"), 2.5);
  EXPECT_EQ(g.all_gather_bytes("abc", "x"), std::vector<std::string>{"abc"});
  auto p = torch::ones({2}, torch::requires_grad());
  p.mutable_grad() = torch::full({2}, 3.0);
  dist::all_reduce_gradients(g, {p}, 1 << 20);
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({2}, 3.0)));
}

TEST(DistProcessGroup, GradientsSumOverRanksInBuckets) {
  auto err = two_ranks([](dist::ProcessGroup& g) {
    const int r = g.rank();
    // Five parameters, a 64-byte bucket cap (several buckets, one parameter larger than a bucket):
    // a: both ranks have gradients; b: only rank 1; c: nobody; d: float64; e: large.
    auto a = torch::zeros({4}, torch::requires_grad()), b = torch::zeros({3}, torch::requires_grad());
    auto c = torch::zeros({2}, torch::requires_grad());
    auto d = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true));
    auto e = torch::zeros({40}, torch::requires_grad());
    a.mutable_grad() = torch::arange(4, torch::kFloat32) + 10 * r;
    if (r == 1) b.mutable_grad() = torch::full({3}, 7.0);
    d.mutable_grad() = torch::full({2}, 0.25 + r, torch::kFloat64);
    e.mutable_grad() = torch::full({40}, 1.0 + r);
    dist::all_reduce_gradients(g, {a, b, c, d, e}, 64);
    if (!torch::equal(a.grad(), torch::arange(4, torch::kFloat32) * 2 + 10)) throw std::runtime_error("a");
    if (!b.grad().defined() || !torch::equal(b.grad(), torch::full({3}, 7.0))) throw std::runtime_error("b");
    if (c.grad().defined()) throw std::runtime_error("c got a gradient");
    if (!torch::equal(d.grad(), torch::full({2}, 1.5, torch::kFloat64))) throw std::runtime_error("d");
    if (!torch::equal(e.grad(), torch::full({40}, 3.0))) throw std::runtime_error("e");
    if (g.all_reduce_sum(1.0 + r, "sum") != 3.0) throw std::runtime_error("scalar");
    const auto parts = g.all_gather_bytes(std::string("rank") + char('0' + r) + std::string(1, '\0') + "\xff", "gather");
    if (parts.size() != 2 || parts[0] != std::string("rank0") + std::string(1, '\0') + "\xff" ||
        parts[1] != std::string("rank1") + std::string(1, '\0') + "\xff")
      throw std::runtime_error("gather");
  });
  EXPECT_EQ(err[0], "");
  EXPECT_EQ(err[1], "");
}

// Each gather's keys are deleted once every rank has read them: a long run's gathers (one per state
// save, through check_identical) leave the store as they found it.
TEST(DistProcessGroup, GathersLeaveNoKeysInTheStore) {
  auto err = two_ranks([](dist::ProcessGroup& g) {
    g.all_gather_bytes("first", "gather");
    g.barrier("start");
    // The backend's own keys may still come and go; the gathers' must not add up (2 per gather before).
    const int64_t before = g.store_keys();
    for (int i = 0; i < 5; ++i) g.all_gather_bytes(std::string(100, char('a' + g.rank())), "gather");
    g.barrier("counted");  // both ranks have deleted their keys
    if (g.store_keys() > before)
      throw std::runtime_error("store keys " + std::to_string(before) + " -> " + std::to_string(g.store_keys()));
  });
  EXPECT_EQ(err[0], "");
  EXPECT_EQ(err[1], "");
}

TEST(DistProcessGroup, IdentityCheckNamesTheDifferingTensor) {
  auto err = two_ranks([](dist::ProcessGroup& g) {
    std::vector<torch::Tensor> same = {torch::ones({3}), torch::arange(5)};
    dist::check_identical(g, same, {"one", "two"}, "check");  // passes
    std::vector<torch::Tensor> differ = {torch::ones({3}), torch::arange(5) * (g.rank() + 1)};
    dist::check_identical(g, differ, {"one", "two"}, "check");
  });
  EXPECT_NE(err[1].find("'two' differs from rank 0"), std::string::npos) << err[1];
  EXPECT_NE(err[0].find("1 rank(s) hold trainables that differ"), std::string::npos) << err[0];
}

TEST(DistProcessGroup, APeerThatLeavesFailsTheOtherWithAClearError) {
  const auto t0 = std::chrono::steady_clock::now();
  auto err = two_ranks(
      [](dist::ProcessGroup& g) {
        if (g.rank() == 1) return;  // leaves: its group is destroyed, its connections close
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        std::vector<torch::Tensor> t = {torch::ones({8})};
        g.all_reduce_sum(t, "the test's all-reduce");
      },
      /*timeout_s=*/20);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(err[1], "");
  EXPECT_NE(err[0].find("rank 0/2: the collective 'the test's all-reduce' failed"), std::string::npos) << err[0];
  EXPECT_LT(s, 25.0);
}
