// Data-parallel SBS-AO training on c10d (Gloo, CPU) with the programs, on MovieLens-100K, LLaRA's
// SASRec and SmolLM2-135M-Instruct:
// - 2 processes x batch 1 equal 1 process x batch 1 x accumulation 2 bit for bit (the loss is
//   normalised by the global token count, and a sum of two gradients is the same in either order), and
//   1 process x batch 2 within float tolerance (other GEMM shapes);
// - every rank holds identical trainables (the trainer checks at each state save and says so);
// - a killed rank makes the survivor fail with a clear error, well inside the timeout;
// - an interrupted 2-process run resumes exactly.
#include <filesystem>
#include <set>

#include "sbtrec_fixture.h"
#include "sbtrec/common/safetensors.h"

using namespace sbtrec;

namespace {

// Short prompts (4 candidates), 3 steps, no dropout, one thread per process (so both sides run the
// same kernels), evaluation cases one per generation batch (so both ranks evaluate).
std::string dp_sets(const test::SbtRecFixture& f) {
  return test::sbtrec_sets(f) +
         " --set train.max_steps=3 --set train.lr=1e-4 --set lora.dropout=0 --set threads=1"
         " --set eval.num_negatives=3 --set eval.max_cases=4 --set eval.max_val_cases=2 --set eval.llm_batch_size=1"
         " --set generation.max_new_tokens=4 --set train.log_every=1";
}

using Tensors = std::map<std::string, torch::Tensor>;
Tensors trainables(const std::string& run, const std::string& which = "state/checkpoint") {
  Tensors t = safetensors::load(run + "/" + which + "/sbtrec.safetensors");
  for (auto& [k, v] : safetensors::load(run + "/" + which + "/adapter/adapter_model.safetensors")) t["adapter/" + k] = v;
  t.erase("slot_embeddings");  // inputs, not trained
  return t;
}

void expect_identical(const Tensors& a, const Tensors& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << what << ": " << k;
}

}  // namespace

TEST(DistributedE2E, TwoProcessesEqualOneProcessWithTheSameGlobalBatch) {
  SBTREC_REQUIRE_SBTREC_INPUTS();
  auto& f = test::sbtrec_fixture();
  test::TempDir dir;
  const std::string sets = dp_sets(f);
  auto dp = test::run(test::bin("sbtrec-train") + sets + " --set train.batch_size=1 --nproc 2 --json --set output_dir=" +
                      (dir / "dp"));
  ASSERT_EQ(dp.exit_code, 0) << dp.output;
  EXPECT_NE(dp.output.find("trainables identical on 2 ranks"), std::string::npos) << dp.output;
  EXPECT_NE(dp.output.find("gloo"), std::string::npos) << dp.output;
  auto acc = test::run(test::bin("sbtrec-train") + sets + " --set train.batch_size=1 --set train.accumulation=2 --json"
                       " --set output_dir=" + (dir / "acc"));
  ASSERT_EQ(acc.exit_code, 0) << acc.output;
  auto big = test::run(test::bin("sbtrec-train") + sets + " --set train.batch_size=2 --json --set output_dir=" + (dir / "big"));
  ASSERT_EQ(big.exit_code, 0) << big.output;
  const auto jd = test::last_json_line(dp.output), ja = test::last_json_line(acc.output), jb = test::last_json_line(big.output);

  // Bit for bit: the same two samples per step, one per rank or one per micro-batch.
  expect_identical(trainables(dir / "dp"), trainables(dir / "acc"), "2 x 1 vs 1 x 1 x 2");
  EXPECT_EQ(jd["first_loss"], ja["first_loss"]);
  EXPECT_EQ(jd["last_loss"], ja["last_loss"]);
  EXPECT_EQ(jd["test"], ja["test"]);  // the sharded, gathered evaluation gives the same figures
  EXPECT_EQ(jd["test"]["n"], 4);
  EXPECT_EQ(test::read_text(dir / "dp/predictions.jsonl"), test::read_text(dir / "acc/predictions.jsonl"));
  auto strip = [](std::vector<nlohmann::json> v) {
    for (auto& j : v) j.erase("tokens_per_s");
    return v;
  };
  EXPECT_EQ(strip(test::read_jsonl(dir / "dp/metrics.jsonl")), strip(test::read_jsonl(dir / "acc/metrics.jsonl")));

  // Float tolerance against one batch of 2: other GEMM shapes round differently, and Adam's first steps
  // move an entry by ~lr whatever the size of its gradient, so a gradient within rounding of zero may
  // flip an entry's step; those must stay a vanishing share.
  EXPECT_NEAR(jd["first_loss"].get<double>(), jb["first_loss"].get<double>(), 1e-5 * jb["first_loss"].get<double>());
  const auto td = trainables(dir / "dp"), tb = trainables(dir / "big");
  ASSERT_EQ(td.size(), tb.size());
  // Pooled over all trainables: one flipped entry of a small LoRA B is a large share of that tensor's
  // norm but not of the model's.
  int64_t off = 0, total = 0;
  double diff2 = 0, norm2 = 0;
  for (const auto& [k, b] : tb) {
    const auto a = td.at(k).to(torch::kFloat64), bb = b.to(torch::kFloat64);
    diff2 += (a - bb).pow(2).sum().item<double>();
    norm2 += bb.pow(2).sum().item<double>();
    off += (a - bb).abs().gt(1e-5 + 1e-3 * bb.abs()).sum().item<int64_t>();
    total += bb.numel();
  }
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-4) << "relative difference of all trainables";
  EXPECT_LE(off, 2 + total / 10000) << off << " of " << total << " entries differ";
  EXPECT_NEAR(jd["last_loss"].get<double>(), jb["last_loss"].get<double>(), 1e-4 * jb["last_loss"].get<double>());
}

// The dead-code reset judges summed counts and re-seeds from all item rows, so with it on (a window of
// one step: a reset at every step) 2 processes still equal 1 bit for bit, and it did re-seed codes.
TEST(DistributedE2E, DeadCodeResetKeepsTwoProcessesEqualToOne) {
  SBTREC_REQUIRE_SBTREC_INPUTS();
  auto& f = test::sbtrec_fixture();
  test::TempDir dir;
  const std::string sets = dp_sets(f) + " --set train.batch_size=1 --set quantizer.dead_codes.enabled=true"
                                        " --set quantizer.dead_codes.window=1 --set eval.max_cases=1";
  auto dp = test::run(test::bin("sbtrec-train") + sets + " --nproc 2 --set output_dir=" + (dir / "dp"));
  ASSERT_EQ(dp.exit_code, 0) << dp.output;
  auto acc = test::run(test::bin("sbtrec-train") + sets + " --set train.accumulation=2 --set output_dir=" + (dir / "acc"));
  ASSERT_EQ(acc.exit_code, 0) << acc.output;
  expect_identical(trainables(dir / "dp"), trainables(dir / "acc"), "2 x 1 vs 1 x 1 x 2, dead codes on");
  const auto init = safetensors::load(f.codebooks + "/codebooks.safetensors").at("codebooks");
  const auto now = trainables(dir / "dp").at("codebooks");
  // Re-seeded rows jump to an item row; gradient steps at lr 1e-4 move a row by far less.
  EXPECT_GT((now - init).abs().amax(-1).gt(1e-2).sum().item<int64_t>(), 0) << "no code was re-seeded";
  const auto st = nlohmann::json::parse(test::read_text(dir / "dp/state/state.json"));
  EXPECT_TRUE(st["recipe"]["dead_codes"].contains("items")) << st.dump();
}

TEST(DistributedE2E, AKilledRankMakesTheOtherFailWithAClearErrorNotAHang) {
  SBTREC_REQUIRE_SBTREC_INPUTS();
  auto& f = test::sbtrec_fixture();
  test::TempDir dir;
  // Two ranks started as any launcher would; rank 1 kills itself with SIGKILL at step 2.
  const std::string port = std::to_string(29500 + (int)(::getpid() % 2000));
  const std::string common = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " ";
  const std::string cmd = test::bin("sbtrec-train-faults") + dp_sets(f) + " --set train.batch_size=1 --set dist.timeout_s=60" +
                          " --set output_dir=" + (dir / "run");
  const std::string script = "(" + common + "RANK=1 SBTREC_FAULT_KILL_AT_STEP=2 " + cmd + " > " + (dir / "rank1.log") +
                             " 2>&1 &) ; " + common + "RANK=0 timeout 240 " + cmd;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = test::run("bash -c '" + script + "'");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "rank 0 hung until the outer timeout\n" << r.output;
  EXPECT_NE(r.output.find("rank 0/2: the collective"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Another rank probably died"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 200) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run/results.json"));

  // Under --nproc the launcher names the dead rank and fails too.
  r = test::run("SBTREC_FAULT_KILL_AT_STEP=2 SBTREC_FAULT_RANK=1 " + test::bin("sbtrec-train-faults") + dp_sets(f) +
                " --set train.batch_size=1 --set dist.timeout_s=60 --nproc 2 --set output_dir=" + (dir / "run2"));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 was killed by signal 9"), std::string::npos) << r.output;
}

TEST(DistributedE2E, InterruptedTwoProcessRunResumesExactly) {
  SBTREC_REQUIRE_SBTREC_INPUTS();
  auto& f = test::sbtrec_fixture();
  test::TempDir dir;
  const std::string sets = dp_sets(f) + " --set train.max_steps=4 --set train.batch_size=1 --set lora.dropout=0.1 --nproc 2";
  auto full = test::run(test::bin("sbtrec-train") + sets + " --json --set output_dir=" + (dir / "full"));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  auto r = test::run(test::bin("sbtrec-train") + sets + " --stop-after 2 --json --set output_dir=" + (dir / "split"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(test::last_json_line(r.output)["stopped"].get<bool>());
  EXPECT_EQ(nlohmann::json::parse(test::read_text(dir / "split/state/state.json"))["world_size"], 2);
  // A different number of processes would split the batches differently: refused.
  r = test::run(test::bin("sbtrec-train") + " --config " + (dir / "split/config.yaml") + " --resume " + (dir / "split"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("world size"), std::string::npos) << r.output;
  r = test::run(test::bin("sbtrec-train") + " --config " + (dir / "split/config.yaml") + " --resume " + (dir / "split") +
                " --nproc 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = test::last_json_line(full.output), b = test::last_json_line(r.output);
  EXPECT_EQ(b["steps"], 4);
  EXPECT_EQ(a["first_loss"], b["first_loss"]);
  EXPECT_EQ(a["last_loss"], b["last_loss"]);
  EXPECT_EQ(a["test"], b["test"]);
  expect_identical(trainables(dir / "full"), trainables(dir / "split"), "state");
  expect_identical(trainables(dir / "full", "checkpoint"), trainables(dir / "split", "checkpoint"), "best checkpoint");
}

TEST(DistributedE2E, EncoderTrainsDataParallelLikeOneProcessWithTheGlobalBatch) {
  // SASRec on synthetic data (no inputs needed): 2 processes x batch 4 against 1 process x batch 8,
  // full-softmax loss and no dropout, so both sides draw nothing at random after the shared init.
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 120 --items 150");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string common = test::bin("sbtrec-train") + " --config " + test::source("configs/movielens/sasrec.yaml") +
                             " --set data.root=" + (dir / "syn") +
                             " --set train.epochs=1 --set train.loss=ce --set encoder.dropout=0 --set threads=1 --json";
  auto dp = test::run(common + " --set train.batch_size=4 --nproc 2 --set output_dir=" + (dir / "dp"));
  ASSERT_EQ(dp.exit_code, 0) << dp.output;
  EXPECT_NE(dp.output.find("encoder weights identical on 2 ranks"), std::string::npos) << dp.output;
  auto one = test::run(common + " --set train.batch_size=8 --set output_dir=" + (dir / "one"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto jd = test::last_json_line(dp.output), jo = test::last_json_line(one.output);
  EXPECT_EQ(jd["best_epoch"], jo["best_epoch"]);
  auto listing = [](const std::string& d) {  // the run directory's files: rank 0's alone, as in one process
    std::set<std::string> names;
    for (const auto& e : std::filesystem::recursive_directory_iterator(d))
      names.insert(std::filesystem::relative(e.path(), d).string());
    return names;
  };
  EXPECT_EQ(listing(dir / "dp"), listing(dir / "one"));
  const auto a = safetensors::load(dir / "dp/checkpoint/model.safetensors");
  const auto b = safetensors::load(dir / "one/checkpoint/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  double diff2 = 0, norm2 = 0;
  for (const auto& [k, v] : b) {
    const auto x = a.at(k).to(torch::kFloat64), y = v.to(torch::kFloat64);
    diff2 += (x - y).pow(2).sum().item<double>();
    norm2 += y.pow(2).sum().item<double>();
  }
  std::cout << "encoder weights, relative difference 2 x 4 vs 1 x 8: " << std::sqrt(diff2 / norm2) << "\n";
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-3);
  // The epoch's mean loss, a sum over the same global batches: equal up to rounding.
  const auto ld = test::read_jsonl(dir / "dp/metrics.jsonl").front(), lo = test::read_jsonl(dir / "one/metrics.jsonl").front();
  ASSERT_EQ(ld["split"], "train");
  EXPECT_NEAR(ld["loss"].get<double>(), lo["loss"].get<double>(), 1e-5 * lo["loss"].get<double>());
}

TEST(DistributedE2E, RunsUnderTorchrun) {
  // The launcher contract: torchrun (from the torch wheel in .venv) sets RANK, WORLD_SIZE, LOCAL_RANK,
  // MASTER_ADDR and MASTER_PORT and serves the store itself; sbtrec-train needs nothing else.
  const std::string torchrun = test::source(".venv/bin/torchrun");
  if (!std::filesystem::exists(torchrun)) GTEST_SKIP() << torchrun << " is missing: run scripts/setup.sh";
  test::TempDir dir;
  auto r = test::run(test::bin("sbtrec-data") + " synth --out " + (dir / "syn") + " --users 120 --items 150");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string port = std::to_string(31000 + (int)(::getpid() % 2000));
  r = test::run(torchrun + " --nnodes 1 --nproc-per-node 2 --rdzv-backend static --node-rank 0 --master-addr 127.0.0.1"
                " --master-port " + port + " --no-python " + test::bin("sbtrec-train") + " --config " +
                test::source("configs/movielens/sasrec.yaml") + " --set data.root=" + (dir / "syn") +
                " --set train.epochs=1 --set threads=1 --json --set output_dir=" + (dir / "run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("encoder weights identical on 2 ranks"), std::string::npos) << r.output;
  EXPECT_EQ(nlohmann::json::parse(test::read_text(dir / "run/results.json"))["test"]["n"], 12);
}
