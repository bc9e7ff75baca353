// Whole-model parity of one SBS-AO step against scripts/reference_sbtrec.py (torch + transformers +
// PEFT, written independently): the same Llama weights, LoRA adapter, item and user vectors,
// codebooks, aligners, templates and candidates give the same prompt and answer ids, the same loss
// (within 1e-5) and the same gradients of the codebooks, the aligners and every LoRA A/B (within
// 1e-4 relative), and greedy generation from three prompts gives the same ids. On a tiny random Llama with SmolLM2's tokenizer (slot tokens added), and on
// SmolLM2-135M-Instruct itself.
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/tokenizer.h"
#include "sbtrec/train/preference.h"
#include "sbtrec/train/sbtrec_model.h"

using namespace sbtrec;

namespace {

double rel(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-30);
}

// SmolLM2's tokenizer with the slot tokens, and a Llama (SmolLM2 itself or a tiny random one with its
// vocabulary) carrying a LoRA adapter whose B is at a trained scale (so A's gradients are not zero).
struct Lm {
  std::unique_ptr<llm::Tokenizer> tok;
  llm::LlamaForCausalLM lm{nullptr};
  prompt::SlotTokens slots;
};
Lm make_lm(bool real_weights) {
  Lm m;
  m.tok = llm::load_tokenizer("default");
  if (real_weights) {
    m.lm = llm::load_llama("default", torch::kFloat32);
  } else {
    auto c = llm::llama_tiny();
    c.vocab_size = m.tok->vocab_size();
    c.max_position_embeddings = 1024;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    m.lm = llm::LlamaForCausalLM(c);
  }
  m.slots = prompt::add_slot_tokens(*m.tok, *m.lm);
  llm::LoraOptions lo;
  lo.dropout = 0;
  m.lm->add_lora(lo);
  torch::NoGradGuard ng;
  for (auto& p : m.lm->named_parameters())
    if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.02);
  return m;
}

// 40 items with titles from accents to digits.
data::Dataset parity_dataset() {
  data::Dataset ds;
  ds.name = "movielens";
  ds.num_items = 40;
  for (int i = 0; i < 40; ++i)
    ds.titles.push_back(i % 3 == 0 ? "Amélie " + std::to_string(i) + " (2001)" : "Movie number " + std::to_string(i) + " (19" + std::to_string(50 + i) + ")");
  return ds;
}

// A case as the reference scripts read it: template, history and candidates (titles and item ids).
nlohmann::json case_json(const data::Dataset& ds, size_t tmpl, const data::Sample& s, const std::vector<int32_t>& cands) {
  nlohmann::json j = {{"template", tmpl}, {"history_items", s.history}, {"candidate_items", cands}};
  for (int32_t h : s.history) j["history"].push_back(ds.titles[h]);
  for (int32_t x : cands) j["candidates"].push_back(ds.titles[x]);
  return j;
}

// The policy's (or reference's) trainables as the reference scripts read them: sbtrec.safetensors.
void save_sbtrec_tensors(const std::string& path, const torch::Tensor& items, const torch::Tensor& users,
                         quantizer::HdsdImpl& hdsd, train::SbtRecModelImpl& model) {
  std::map<std::string, torch::Tensor> t = {{"item_vectors", items}, {"user_vectors", users},
                                            {"codebooks", hdsd.items->codebooks.detach()},
                                            {"user_codebooks", hdsd.user->codebooks.detach()}};
  for (const auto& p : model.item_aligner->named_parameters()) t["item_aligner." + p.key()] = p.value().detach();
  for (const auto& p : model.user_aligner->named_parameters()) t["user_aligner." + p.key()] = p.value().detach();
  safetensors::save(path, t, {});
}

// Gradients of the codebooks, aligners and LoRA against the reference's grad.* tensors: the worst relative
// max-abs difference must stay within 1e-4, and every one must be there.
void compare_gradients(std::map<std::string, torch::Tensor>& ref, quantizer::HdsdImpl& hdsd, train::SbtRecModelImpl& model,
                       llm::LlamaForCausalLMImpl& lm) {
  double worst = 0;
  std::string worst_name;
  int compared = 0;
  auto compare = [&](const std::string& name, const torch::Tensor& got) {
    ASSERT_TRUE(ref.count("grad." + name)) << name;
    ASSERT_TRUE(got.defined()) << name << ": no gradient";
    const double e = rel(got, ref["grad." + name]);
    if (e > worst) worst = e, worst_name = name;
    ++compared;
  };
  compare("codebooks.items", hdsd.items->codebooks.grad());
  compare("codebooks.user", hdsd.user->codebooks.grad());
  for (const auto& p : model.item_aligner->named_parameters()) compare("item_aligner." + p.key(), p.value().grad());
  for (const auto& p : model.user_aligner->named_parameters()) compare("user_aligner." + p.key(), p.value().grad());
  for (const auto& p : lm.named_parameters())
    if (p.key().find("lora_") != std::string::npos) compare(p.key(), p.value().grad());
  std::cout << compared << " gradients, worst relative max-abs difference " << worst << " (" << worst_name << ")\n";
  EXPECT_EQ(compared, 2 + 8 + 2 * 7 * lm.config.num_hidden_layers);
  EXPECT_LE(worst, 1e-4) << worst_name;
}

void check_step(bool real_weights) {
  SBTREC_REQUIRE_MODEL();
  SBTREC_REQUIRE_PYTHON();
  torch::manual_seed(11);
  auto parts = make_lm(real_weights);
  auto& tok = parts.tok;
  auto lm = parts.lm;
  const auto slots = parts.slots;
  // D 12, Z 10, L 2 x K 8.
  const auto ds = parity_dataset();
  auto items = torch::randn({40, 12});
  auto users = torch::randn({3, 10});  // one per generation case; the training batch uses the first two
  quantizer::QuantizerOptions qo;
  qo.levels = 2;
  qo.codes = 8;
  quantizer::Hdsd hdsd(qo, 12, 10);
  hdsd->items->init_kmeans_pp(items, 1);
  hdsd->user->init_kmeans_pp(torch::randn({30, 10}), 2);
  train::SbtRecModel model(lm, items, hdsd, 10, aligner::AlignerOptions{aligner::AlignerType::kMlp, 32});
  model->train();

  const std::string tmpl_path = test::source("configs/prompts/movielens.txt");
  auto templates = prompt::load_templates(tmpl_path, prompt::TemplateFormat::kSbtrec);
  prompt::PromptBuilder builder(templates, *tok, slots, {}, "", true, 1024);
  struct Case {
    size_t tmpl;
    data::Sample s;
    std::vector<int32_t> cands;
  };
  std::vector<Case> cases = {{0, {1, {3, 9, 12, 27}, 5}, {5, 30, 7, 3}}, {2, {2, {0, 1, 2}, 39}, {8, 39, 21}}};
  std::vector<prompt::EncodedPrompt> encoded;
  nlohmann::json spec = {{"tokenizer", test::default_model_gguf()}, {"templates", templates.lines}, {"user_token", true}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    encoded.push_back(builder.encode(c.tmpl, ds, c.s, c.cands, true, c.s.target, "case " + std::to_string(i)));
    auto j = case_json(ds, c.tmpl, c.s, c.cands);
    j["target"] = ds.titles[c.s.target];
    spec["cases"].push_back(j);
  }
  // Greedy generation from the prompts alone (left-padded, slots suppressed, no EOS stop), as evaluation runs it.
  std::vector<Case> gen_cases = cases;
  gen_cases.push_back({1, {3, {33, 34, 35, 36, 37}, 20}, {20, 11, 4}});
  std::vector<prompt::EncodedPrompt> gen_prompts;
  for (size_t i = 0; i < gen_cases.size(); ++i) {
    const auto& c = gen_cases[i];
    gen_prompts.push_back(builder.encode(c.tmpl, ds, c.s, c.cands, true, std::nullopt, "generation case " + std::to_string(i)));
    spec["generation_cases"].push_back(case_json(ds, c.tmpl, c.s, c.cands));
  }
  spec["max_new_tokens"] = 12;
  torch::Tensor generated;
  {
    torch::NoGradGuard ng;
    model->eval();
    auto gb = prompt::collate(gen_prompts, 0, true);
    llm::GenerationOptions go;
    go.max_new_tokens = 12;
    go.pad_token_id = 0;
    go.suppress_token_ids = {slots.history, slots.candidate, slots.user};
    generated = llm::generate_from_embeds(*lm, model->inputs_embeds(gb, users), gb.attention_mask, go);  // [3, 12]
    model->train();
  }

  auto batch = prompt::collate(encoded, 0, false);
  auto loss = model->loss(batch, users);
  loss.backward();

  test::TempDir dir;
  const std::string d = dir.path.string();
  llm::save_llama(d + "/model", *lm);
  llm::save_adapter(d + "/adapter", *lm, "tiny");
  save_sbtrec_tensors(d + "/sbtrec.safetensors", items, users, *hdsd, *model);
  test::write_text(d + "/cases.json", spec.dump(1));
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/reference_sbtrec.py") + " " + d);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = safetensors::load(d + "/reference.safetensors");

  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& e = encoded[i];
    std::vector<int64_t> p(e.ids.begin(), e.ids.begin() + e.prompt_length), a(e.ids.begin() + e.prompt_length, e.ids.end());
    auto rp = ref["case" + std::to_string(i) + ".prompt_ids"], ra = ref["case" + std::to_string(i) + ".answer_ids"];
    EXPECT_EQ(p, std::vector<int64_t>(rp.data_ptr<int64_t>(), rp.data_ptr<int64_t>() + rp.numel())) << "case " << i;
    EXPECT_EQ(a, std::vector<int64_t>(ra.data_ptr<int64_t>(), ra.data_ptr<int64_t>() + ra.numel())) << "case " << i;
  }
  ASSERT_TRUE(ref.count("generated_ids"));
  EXPECT_TRUE(torch::equal(generated, ref["generated_ids"])) << "sbtrec:\n" << generated << "\nreference:\n" << ref["generated_ids"];
  if (real_weights) std::cout << "greedy answer of generation case 0: " << tok->decode(std::vector<int64_t>(
                                    generated[0].data_ptr<int64_t>(), generated[0].data_ptr<int64_t>() + generated.size(1))) << "\n";
  const double want = ref["loss"].item<double>();
  std::cout << "SBT-Rec step (" << (real_weights ? "SmolLM2" : "tiny") << "): loss " << loss.item<double>() << " vs " << want << "\n";
  EXPECT_NEAR(loss.item<double>(), want, 1e-5);
  compare_gradients(ref, *hdsd, *model, *lm);
}

// One S-DPO step (the policy with gradient, the frozen reference: its own LoRA, codebooks and aligners on
// the same base weights) against scripts/reference_sdpo.py, which scores every answer with its own
// forward: the answers' log-probabilities, the loss within 1e-5, the policy's gradients within 1e-4.
void check_sdpo(bool real_weights) {
  SBTREC_REQUIRE_MODEL();
  SBTREC_REQUIRE_PYTHON();
  torch::manual_seed(12);
  auto policy = make_lm(real_weights);
  auto reference = make_lm(real_weights);  // its base is replaced by the policy's (freeze_as_reference)
  const auto ds = parity_dataset();
  auto items = torch::randn({40, 12});
  auto users = torch::randn({2, 10});
  quantizer::QuantizerOptions qo;
  qo.levels = 2;
  qo.codes = 8;
  quantizer::Hdsd hdsd(qo, 12, 10), ref_hdsd(qo, 12, 10);
  hdsd->items->init_kmeans_pp(items, 1);
  hdsd->user->init_kmeans_pp(torch::randn({30, 10}), 2);
  ref_hdsd->items->load_codebooks(hdsd->items->codebooks.detach() + 0.05 * torch::randn({2, 8, 12}), "test");
  ref_hdsd->user->load_codebooks(hdsd->user->codebooks.detach() + 0.05 * torch::randn({2, 8, 10}), "test");
  const aligner::AlignerOptions ao{aligner::AlignerType::kMlp, 32};
  train::SbtRecModel model(policy.lm, items, hdsd, 10, ao), ref_model(reference.lm, items, ref_hdsd, 10, ao);
  model->train();
  train::freeze_as_reference(*ref_model, *model);

  auto templates = prompt::load_templates(test::source("configs/prompts/movielens.txt"), prompt::TemplateFormat::kSbtrec);
  prompt::PromptBuilder builder(templates, *policy.tok, policy.slots, {}, "", true, 1024);
  struct Case {
    size_t tmpl;
    data::Sample s;
    std::vector<int32_t> cands, rejected;
  };
  const std::vector<Case> cases = {{0, {1, {3, 9, 12, 27}, 5}, {5, 30, 7, 3}, {30, 3, 7}},
                                   {2, {2, {0, 1, 2}, 39}, {8, 39, 21, 16}, {21, 8, 16}}};
  const double beta = 0.5;
  std::vector<prompt::EncodedPrompt> prompts;
  std::vector<std::vector<std::vector<int64_t>>> answers;
  nlohmann::json spec = {{"tokenizer", test::default_model_gguf()}, {"templates", templates.lines}, {"user_token", true},
                         {"beta", beta}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    prompts.push_back(builder.encode(c.tmpl, ds, c.s, c.cands, true, std::nullopt, "case " + std::to_string(i)));
    auto j = case_json(ds, c.tmpl, c.s, c.cands);
    std::vector<std::vector<int64_t>> a = {builder.encode_answer(ds.titles[c.s.target])};
    j["answers"].push_back(ds.titles[c.s.target]);
    for (int32_t x : c.rejected) a.push_back(builder.encode_answer(ds.titles[x])), j["answers"].push_back(ds.titles[x]);
    answers.push_back(a);
    spec["cases"].push_back(j);
  }
  auto pb = prompt::collate(prompts, 0, false);
  const auto scores = train::preference_scores(*model, *ref_model, pb, users, answers);
  const auto &pi = scores.policy, &rho = scores.reference;
  auto loss = train::sdpo_loss(pi, rho, beta);
  loss.backward();

  test::TempDir dir;
  const std::string d = dir.path.string();
  llm::save_llama(d + "/model", *policy.lm);
  llm::save_adapter(d + "/adapter", *policy.lm, "tiny");
  llm::save_adapter(d + "/ref_adapter", *reference.lm, "tiny");
  save_sbtrec_tensors(d + "/sbtrec.safetensors", items, users, *hdsd, *model);
  save_sbtrec_tensors(d + "/ref_sbtrec.safetensors", items, users, *ref_hdsd, *ref_model);
  test::write_text(d + "/cases.json", spec.dump(1));
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/reference_sdpo.py") + " " + d);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = safetensors::load(d + "/reference.safetensors");
  EXPECT_LT((pi.detach() - ref["logp.policy"]).abs().max().item<double>(), 1e-4) << pi << ref["logp.policy"];
  EXPECT_LT((rho - ref["logp.reference"]).abs().max().item<double>(), 1e-4) << rho << ref["logp.reference"];
  EXPECT_GT((pi.detach() - rho).abs().max().item<double>(), 1e-3);  // the reference is another model
  std::cout << "S-DPO step (" << (real_weights ? "SmolLM2" : "tiny") << "): loss " << loss.item<double>() << " vs "
            << ref["loss"].item<double>() << "\n";
  EXPECT_NEAR(loss.item<double>(), ref["loss"].item<double>(), 1e-5);
  compare_gradients(ref, *hdsd, *model, *policy.lm);
}

}  // namespace

TEST(SbtRecParity, TinyRandomLlamaStepMatchesTorchTransformersPeft) { check_step(false); }
TEST(SbtRecParity, SmolLM2StepMatchesTorchTransformersPeft) { check_step(true); }
TEST(SbtRecParity, SdpoTinyRandomLlamaMatchesTorchTransformersPeft) { check_sdpo(false); }
TEST(SbtRecParity, SdpoSmolLM2MatchesTorchTransformersPeft) { check_sdpo(true); }
