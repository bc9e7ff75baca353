// Benchmarks of SBT-Rec itself, mirroring bench/reference/sbtrec_step.py and sbtrec_generate.py:
//   step:     SBS-AO optimizer steps (HDSD + MBSR, aligners, hybrid prompt embeddings, LLM loss,
//             backward into codebooks / aligners / LoRA, Adam over the three groups) on one fixed batch
//             of real training prompts (the first --batch training samples, their seeded candidates,
//             template 0); --dump DIR writes that batch and every SBT-Rec tensor for the reference.
//   sdpo-step: S-DPO optimizer steps (issue 24) on the first --batch training samples: each prompt with its
//             target's answer and --negatives other candidates' answers, scored once for the policy (with
//             gradient) and once for a frozen reference sharing its base weights, each prompt run once for
//             all its answers (llm/shared_prompt.h); --dump DIR writes the batch for bench/reference/sdpo_step.py.
//   generate: test-set evaluation by generation (evaluate_sbtrec) on the first --cases cases, in
//             cases/s; --dump DIR writes each batch's left-padded inputs_embeds and mask.
// Both build the session from an SBT-Rec config (--config, --set) exactly as sbtrec-train does.
// Prints one JSON line.
#include <chrono>
#include <functional>
#include <iostream>

#include "../src/cli/cli_common.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/train/preference.h"
#include "sbtrec/train/sbtrec_trainer.h"

using namespace sbtrec;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<int64_t> first_rows(int64_t n) {
  std::vector<int64_t> r((size_t)n);
  for (int64_t i = 0; i < n; ++i) r[(size_t)i] = i;
  return r;
}

// A prompt batch, the model's SBT-Rec tensors and the settings the Python references rebuild them from
// (--dump): the batch's ids, mask and slots, item (and user) vectors, codebooks; lr, LoRA and aligner width.
std::map<std::string, torch::Tensor> dump_tensors(const prompt::PromptBatch& b, train::SbtRecModelImpl& m,
                                                  const torch::Tensor& users) {
  std::map<std::string, torch::Tensor> t = {
      {"input_ids", b.input_ids},       {"attention_mask", b.attention_mask}, {"slot_batch", b.slot_batch},
      {"slot_position", b.slot_position}, {"slot_kind", b.slot_kind},          {"slot_item", b.slot_item},
      {"item_vectors", m.item_vectors.cpu()}};
  if (b.labels.defined()) t["labels"] = b.labels;
  if (users.defined()) t["user_vectors"] = users;
  if (m.hdsd && m.hdsd->items) t["codebooks"] = m.hdsd->items->codebooks.detach().cpu();
  if (m.hdsd && m.hdsd->user) t["user_codebooks"] = m.hdsd->user->codebooks.detach().cpu();
  return t;
}
std::map<std::string, std::string> dump_meta(const Config& cfg, train::SbtRecModelImpl& m) {
  return {{"lr", std::to_string(cfg.train.lr)}, {"lora_r", std::to_string(cfg.lora.r)},
          {"lora_alpha", std::to_string(cfg.lora.alpha)}, {"lora_dropout", std::to_string(cfg.lora.dropout)},
          {"aligner_hidden", std::to_string(m.item_aligner->mlp_proj[0]->as<torch::nn::Linear>()->options.out_features())}};
}

// The optimizer of the config's three groups over `m`, in training mode.
std::unique_ptr<torch::optim::Optimizer> train_optimizer(const Config& cfg, train::SbtRecModelImpl& m) {
  std::vector<double> lr;
  std::vector<std::string> names;
  m.train();
  return train::make_sbtrec_optimizer(cfg.train, m, lr, names);
}
// `warmup` untimed calls of `step`, then the mean seconds of `steps` timed ones; *loss = the last's.
double time_steps(int warmup, int steps, const std::function<double()>& step, double* loss) {
  for (int i = 0; i < warmup; ++i) *loss = step();
  const double t0 = now();
  for (int i = 0; i < steps; ++i) *loss = step();
  return (now() - t0) / steps;
}
}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-bench-sbtrec: SBS-AO step and evaluation-by-generation timings"};
  app.require_subcommand(1);
  cli::ConfigArgs cfg_args;
  int steps = 3, warmup = 1, batch = 4, threads = 2;
  int64_t cases = 32;
  std::string dump;
  auto* step_cmd = app.add_subcommand("step", "SBS-AO optimizer steps on one batch of real training prompts");
  auto* gen_cmd = app.add_subcommand("generate", "evaluation by generation on the first test cases");
  auto* sdpo_cmd = app.add_subcommand("sdpo-step", "S-DPO optimizer steps on one batch of real training prompts");
  int negatives = 3;
  double beta = 1.0;
  for (auto* sub : {step_cmd, gen_cmd, sdpo_cmd}) {
    cfg_args.add_to(*sub);
    sub->add_option("--threads", threads, "torch intra-op threads");
    sub->add_option("--dump", dump, "Write the inputs for the Python reference into this directory");
  }
  step_cmd->add_option("--steps", steps, "timed steps");
  step_cmd->add_option("--warmup", warmup, "untimed steps first");
  step_cmd->add_option("--batch", batch, "prompts per step");
  sdpo_cmd->add_option("--steps", steps, "timed steps");
  sdpo_cmd->add_option("--warmup", warmup, "untimed steps first");
  sdpo_cmd->add_option("--batch", batch, "prompts per step");
  sdpo_cmd->add_option("--negatives", negatives, "rejected answers per prompt");
  sdpo_cmd->add_option("--beta", beta, "S-DPO's beta");
  gen_cmd->add_option("--cases", cases, "test cases");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    Config cfg;
    if (!cfg_args.load(cfg)) return 0;
    cfg.threads = threads;
    torch::set_num_threads(threads);
    const auto ds = data::load_dataset(cfg.data);
    auto s = train::build_sbtrec(cfg, ds, /*fit_codebooks=*/true);
    auto& m = *s.model;
    nlohmann::json out = {{"threads", threads}, {"model", cfg.llm.model}};
    if (step_cmd->parsed()) {
      const auto rows = first_rows(batch);
      const auto cands = data::make_candidates(ds, data::Split::kTrain, cfg.eval.num_negatives, cfg.eval.candidate_seed);
      std::vector<const data::CandidateSet*> cps;
      for (int64_t r : rows) cps.push_back(&cands[(size_t)r]);
      auto b = s.batch(data::Split::kTrain, rows, cps, std::vector<size_t>(rows.size(), 0), true, true, false);
      auto users = s.users(data::Split::kTrain, rows);  // [B, Z]
      auto opt = train_optimizer(cfg, m);
      if (!dump.empty()) {
        make_dirs(dump);
        safetensors::save(dump + "/step.safetensors", dump_tensors(b, m, users), dump_meta(cfg, m));
      }
      const std::vector<std::pair<prompt::PromptBatch, torch::Tensor>> micro = {{b, users}};
      double loss = 0;
      const double sec =
          time_steps(warmup, steps, [&] { return train::sbtrec_step(m, *opt, micro, cfg.train.max_grad_norm); }, &loss);
      out.update({{"bench", "sbtrec_step"}, {"seconds_per_step", sec}, {"loss", loss}, {"batch", batch},
                  {"tokens", b.attention_mask.sum().item<int64_t>()}, {"seq", b.input_ids.size(1)},
                  {"tokens_per_s", b.attention_mask.sum().item<double>() / sec}});
    } else if (sdpo_cmd->parsed()) {
      // The reference: the same config's model, frozen, on the policy's base weights.
      auto ref = train::build_sbtrec(cfg, ds, /*fit_codebooks=*/true);
      train::freeze_as_reference(*ref.model, m);
      const auto rows = first_rows(batch);
      const auto cands = data::make_candidates(ds, data::Split::kTrain, cfg.eval.num_negatives, cfg.eval.candidate_seed);
      std::vector<const data::CandidateSet*> cps;
      std::vector<std::vector<std::vector<int64_t>>> answers;
      std::vector<int64_t> flat, lengths;  // the answers' ids back to back, and each answer's length [B * J]
      for (int64_t r : rows) {
        const auto& cs = cands[(size_t)r];
        cps.push_back(&cs);
        std::vector<int64_t> rejected;  // the first `negatives` candidates other than the target
        for (int64_t c = 0; c < (int64_t)cs.items.size() && (int64_t)rejected.size() < negatives; ++c)
          if (c != cs.target_index) rejected.push_back(c);
        auto a = train::preference_answers(*s.builder, ds, cs, rejected);
        for (const auto& x : a) flat.insert(flat.end(), x.begin(), x.end()), lengths.push_back((int64_t)x.size());
        answers.push_back(std::move(a));
      }
      auto b = s.batch(data::Split::kTrain, rows, cps, std::vector<size_t>(rows.size(), 0), true, false, false);
      auto users = s.users(data::Split::kTrain, rows);  // [B, Z]
      auto opt = train_optimizer(cfg, m);
      if (!dump.empty()) {
        make_dirs(dump);
        auto t = dump_tensors(b, m, users);
        t["answer_ids"] = torch::tensor(flat, torch::kInt64);
        t["answer_lengths"] = torch::tensor(lengths, torch::kInt64).view({batch, negatives + 1});
        auto meta = dump_meta(cfg, m);
        meta["beta"] = std::to_string(beta);
        safetensors::save(dump + "/sdpo.safetensors", t, meta);
      }
      auto one_step = [&]() {
        opt->zero_grad();
        const auto scores = train::preference_scores(m, *ref.model, b, users, answers);  // [B, J] each
        auto loss = train::sdpo_loss(scores.policy, scores.reference, beta);
        loss.backward();
        opt->step();
        return loss.item<double>();
      };
      double loss = 0;
      const double sec = time_steps(warmup, steps, one_step, &loss);
      int64_t answer_tokens = 0;
      for (int64_t x : lengths) answer_tokens += x;
      out.update({{"bench", "sdpo_step"}, {"seconds_per_step", sec}, {"loss", loss}, {"batch", batch},
                  {"negatives", negatives}, {"prompt_tokens", b.attention_mask.sum().item<int64_t>()},
                  {"answer_tokens", answer_tokens}});
    } else {
      s.cfg.eval.max_cases = cases;
      const auto cands = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
      if (!dump.empty()) {
        // The same batches evaluate_sbtrec generates from: left-padded embeddings and masks.
        torch::NoGradGuard ng;
        m.eval();
        make_dirs(dump);
        std::map<std::string, torch::Tensor> t;
        const int64_t n = std::min<int64_t>(cases, (int64_t)ds.test.size()), B = cfg.eval.llm_batch_size;
        for (int64_t start = 0, k = 0; start < n; start += B, ++k) {
          const auto c = s.eval_cases(data::Split::kTest, start, std::min(n, start + B), cands);
          auto b = s.batch(data::Split::kTest, c.rows, c.candidates, c.templates, cfg.prompt.hybrid, false, true);
          t["embeds." + std::to_string(k)] = m.inputs_embeds(b, s.users(data::Split::kTest, c.rows)).cpu();
          t["mask." + std::to_string(k)] = b.attention_mask;
        }
        std::string eos, suppress;
        for (auto id : s.generation.eos_token_ids) eos += (eos.empty() ? "" : ",") + std::to_string(id);
        for (auto id : s.generation.suppress_token_ids) suppress += (suppress.empty() ? "" : ",") + std::to_string(id);
        safetensors::save(dump + "/generate.safetensors", t,
                          {{"eos", eos}, {"suppress", suppress}, {"pad", std::to_string(s.generation.pad_token_id)},
                           {"max_new_tokens", std::to_string(s.generation.max_new_tokens)},
                           {"num_beams", std::to_string(s.generation.num_beams)},
                           {"lora_r", std::to_string(cfg.lora.r)}, {"lora_alpha", std::to_string(cfg.lora.alpha)}});
      }
      const double t0 = now();
      const auto e = eval::evaluate_sbtrec(s, data::Split::kTest, cands);
      const double sec = now() - t0;
      out.update({{"bench", "sbtrec_generate"}, {"cases", e.metrics.n}, {"seconds", sec},
                  {"cases_per_s", (double)e.metrics.n / sec}, {"hr@1", e.metrics.hr1.value_or(0)},
                  {"valid_ratio", e.metrics.valid_ratio.value_or(0)}, {"batch", cfg.eval.llm_batch_size}});
    }
    std::cout << out.dump() << std::endl;
    return 0;
  });
}
