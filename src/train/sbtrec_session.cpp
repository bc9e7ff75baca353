// The SBT-Rec session and its checkpoints (see sbtrec_session.h).
#include "sbtrec/train/sbtrec_session.h"

#include <spdlog/spdlog.h>

#include <map>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/digest.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/special_tokens.h"
#include "sbtrec/quantizer/hdsd.h"

namespace sbtrec::train {

namespace {
constexpr const char* kCheckpointFormat = "sbtrec-checkpoint-1";
size_t split_slot(data::Split s) { return (size_t)data::split_code(s); }
}  // namespace

namespace {

// HDSD for the kinds the prompts use: codebooks from quantizer.codebooks, fitted by k-means++ (on the
// session's training user vectors), or left empty for a checkpoint to fill. Null without quantizer.
quantizer::Hdsd make_hdsd(const SbtRecSession& s, encoder::EncoderImpl& enc, const EncoderOptions& eo,
                          const torch::Tensor& items, int64_t Z, bool fit_codebooks) {
  const auto& cfg = s.cfg;
  auto qo = cfg.quantizer;
  if (!s.user_token && qo.inputs == quantizer::QuantizerInputs::kBoth) qo.inputs = quantizer::QuantizerInputs::kItems;
  if (!qo.enabled || (!s.user_token && qo.inputs == quantizer::QuantizerInputs::kUser)) return quantizer::Hdsd{nullptr};
  if (!qo.codebooks.empty()) {
    quantizer::Hdsd hdsd(qo, items.size(1), std::max<int64_t>(Z, 1));
    quantizer::load_hdsd_codebooks(qo.codebooks, *hdsd, qo.item_rows);
    spdlog::info("HDSD codebooks from {}", qo.codebooks);
    return hdsd;
  }
  if (!fit_codebooks) return quantizer::Hdsd(qo, items.size(1), std::max<int64_t>(Z, 1));  // filled by a checkpoint
  auto fit = quantizer::fit_hdsd(qo, quantizer::kmeans_seed(qo, cfg.seed), enc, *s.ds, eo.max_len, cfg.eval.batch_size,
                                 s.user_token ? s.user_vectors[0] : torch::Tensor());
  spdlog::info("HDSD fitted by k-means++: {}", fit.stats.dump());
  return fit.hdsd;
}

// Decoding's stop ids (the model's, the tokenizer's end of sequence, ChatML's end of turn), pad id and
// the added tokens it must never write.
llm::GenerationOptions generation_options(const Config& cfg, const llm::Tokenizer& tok, const llm::LlamaConfig& lm,
                                          llm::ChatFormat chat) {
  auto g = cfg.generation;
  g.eos_token_ids = lm.eos_token_ids;
  auto add_eos = [&](int64_t id) {
    if (id >= 0 && std::find(g.eos_token_ids.begin(), g.eos_token_ids.end(), id) == g.eos_token_ids.end())
      g.eos_token_ids.push_back(id);
  };
  add_eos(tok.eos_id());
  if (chat == llm::ChatFormat::kChatML) add_eos(tok.token_to_id("<|im_end|>").value_or(-1));
  g.pad_token_id = tok.pad_id() >= 0 ? tok.pad_id() : g.eos_token_ids.at(0);
  llm::suppress_added_tokens(tok, g);
  return g;
}

}  // namespace

SbtRecSession build_sbtrec(const Config& cfg, const data::Dataset& ds, bool fit_codebooks) {
  if (cfg.llm.model.empty())
    throw ConfigError("config key 'llm.model' is empty: SBT-Rec needs an LLM (default = SmolLM2-135M-Instruct, or a "
                      "Hugging Face Llama directory)");
  if (cfg.encoder.checkpoint.empty())
    throw ConfigError("config key 'encoder.checkpoint' is empty: SBT-Rec reads its behaviour vectors from a frozen "
                      "encoder. Train one (sbtrec-train --config configs/" + ds.name + "/sasrec.yaml) or import LLaRA's "
                      "(scripts/import_llara_checkpoint.py) and set encoder.checkpoint to its directory");
  SbtRecSession s;
  s.cfg = cfg;
  s.ds = &ds;
  s.encoder_dir = resolve_checkpoint_dir(cfg.encoder.checkpoint, "model.safetensors");
  EncoderOptions eo;
  auto enc = encoder::load_encoder(s.encoder_dir, ds.num_items, &eo);
  enc->eval();
  auto items = quantizer::item_vectors(*enc, cfg.quantizer.item_rows);  // [N, D]
  s.user_token = cfg.prompt.hybrid && cfg.prompt.user_token;
  int64_t Z = 0;
  if (s.user_token) {
    for (auto sp : {data::Split::kTrain, data::Split::kVal, data::Split::kTest})
      s.user_vectors[split_slot(sp)] = quantizer::user_vectors(*enc, ds.split(sp), eo.max_len, cfg.eval.batch_size);  // [S, Z]
    Z = s.user_vectors[0].size(1);
  }
  spdlog::info("encoder {} ({}): items {} x {}, user vectors {}", s.encoder_dir, encoder_name(eo.type), items.size(0),
               items.size(1), s.user_token ? std::to_string(Z) + " wide" : "off");
  auto hdsd = make_hdsd(s, *enc, eo, items, Z, fit_codebooks);

  torch::manual_seed(cfg.seed);  // LoRA A and the aligners' initialisation
  const torch::Device device(cfg.llm.device);
  auto lm = llm::load_llama(cfg.llm.model, llm::scalar_type(cfg.llm.dtype), device);
  s.tokenizer = llm::load_tokenizer(cfg.llm.model);
  s.slots = prompt::add_slot_tokens(*s.tokenizer, *lm);
  lm->add_lora(cfg.lora);
  lm->set_gradient_checkpointing(cfg.llm.activation_checkpointing);
  lm->set_gemm_dtype(llm::scalar_type(cfg.llm.gemm_dtype));
  lm->set_onednn_gemm(cfg.llm.cpu_gemm == llm::CpuGemm::kOneDnn);
  s.model = SbtRecModel(lm, items, hdsd, s.user_token ? Z : 0, cfg.aligner);
  s.model->to(device);
  if (cfg.prompt.shuffle_items)
    s.model->set_item_permutation(torch::tensor(permutation(stream_key(cfg.seed, Purpose::kShuffle, 0), ds.num_items)).to(device));

  const auto chat = llm::resolve_chat_format(cfg.llm.chat_format, llm::resolve_model(cfg.llm.model));
  const std::string templates_file = prompt::templates_path(cfg.prompt, ds.name);
  s.builder = std::make_unique<prompt::PromptBuilder>(prompt::load_templates(templates_file, cfg.prompt.format), *s.tokenizer,
                                                      s.slots, chat, cfg.llm.system_message, s.user_token,
                                                      lm->config.max_position_embeddings, cfg.prompt);
  s.inputs = {{"encoder", {{"dir", s.encoder_dir}, {"sha256", sha256_file(s.encoder_dir + "/model.safetensors")}}},
              {"dataset", {{"name", ds.name}, {"signature", data::signature(ds)}}},
              {"templates", {{"path", templates_file}, {"sha256", sha256_file(templates_file)}}},
              {"model", {{"name", cfg.llm.model}, {"identity", llm::model_identity(cfg.llm.model)}}}};
  s.generation = generation_options(cfg, *s.tokenizer, lm->config, chat.format);
  return s;
}

prompt::PromptBatch SbtRecSession::batch(data::Split split, const std::vector<int64_t>& rows,
                                         const std::vector<const data::CandidateSet*>& candidates,
                                         const std::vector<size_t>& templates, bool hybrid, bool with_answer,
                                         bool left_pad) const {
  const auto& samples = ds->split(split);
  std::vector<prompt::EncodedPrompt> prompts;
  prompts.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& sample = samples[(size_t)rows[i]];
    prompts.push_back(builder->encode(templates[i], *ds, sample, candidates[i]->items, hybrid,
                                      with_answer ? std::optional<int32_t>(sample.target) : std::nullopt,
                                      fmt::format("{} sample {}", data::split_name(split), rows[i])));
  }
  return prompt::collate(prompts, generation.pad_token_id, left_pad);
}

SbtRecSession::Cases SbtRecSession::eval_cases(data::Split split, int64_t begin, int64_t end,
                                               const std::vector<data::CandidateSet>& candidates) const {
  std::vector<int64_t> rows;
  for (int64_t i = begin; i < end; ++i) rows.push_back(i);
  return eval_cases(split, rows, candidates);
}

SbtRecSession::Cases SbtRecSession::eval_cases(data::Split split, const std::vector<int64_t>& rows,
                                               const std::vector<data::CandidateSet>& candidates) const {
  Cases c;
  for (const int64_t i : rows) {  // each case's template is its own, whichever batch it is in
    c.rows.push_back(i);
    c.candidates.push_back(&candidates[(size_t)i]);
    c.templates.push_back(prompt::evaluation_template(cfg.seed, split, i, builder->num_templates()));
  }
  return c;
}

torch::Tensor SbtRecSession::users(data::Split split, const std::vector<int64_t>& rows) const {
  const auto& u = user_vectors[split_slot(split)];
  if (!user_token || !u.defined()) return {};
  return u.index_select(0, torch::tensor(rows, torch::kInt64));  // [B, Z]
}

void save_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, const std::string& config_yaml) {
  make_dirs(dir);
  auto& m = *s.model;
  llm::save_adapter(dir + "/adapter", *m.llm, s.cfg.llm.model);
  std::map<std::string, torch::Tensor> t;
  if (m.hdsd && m.hdsd->items) t["codebooks"] = m.hdsd->items->codebooks.detach().cpu();
  if (m.hdsd && m.hdsd->items && m.hdsd->items->has_index()) t["index_codebook"] = m.hdsd->items->index_codebook.detach().cpu();
  if (m.hdsd && m.hdsd->user) t["user_codebooks"] = m.hdsd->user->codebooks.detach().cpu();
  for (const auto& p : m.item_aligner->named_parameters()) t["item_aligner." + p.key()] = p.value().detach().cpu();
  if (m.user_aligner)
    for (const auto& p : m.user_aligner->named_parameters()) t["user_aligner." + p.key()] = p.value().detach().cpu();
  const auto rows = torch::tensor({s.slots.history, s.slots.candidate, s.slots.user}, torch::kInt64);
  auto& W = m.llm->model->embed_tokens->weight;
  t["slot_embeddings"] = W.index_select(0, rows.to(W.device())).detach().to(torch::kFloat32).cpu();  // [3, E]
  safetensors::save(dir + "/sbtrec.safetensors", t,
                    {{"format", kCheckpointFormat}, {"encoder", s.encoder_dir}, {"dataset", s.ds->name}});
  atomic_write_string(dir + "/config.yaml", config_yaml);
  atomic_write_string(dir + "/inputs.json", s.inputs.dump(2) + "\n");
}

namespace {
// The checkpoint's recorded inputs against the session's: each differing one named with both values.
void check_inputs(const std::string& dir, const SbtRecSession& s, bool other_inputs) {
  const std::string f = dir + "/inputs.json";
  if (!path_exists(f)) {
    spdlog::warn("{}: no inputs.json (a checkpoint of an older sbtrec): its encoder, templates, dataset and model "
                 "cannot be checked against this config's", dir);
    return;
  }
  const auto saved = nlohmann::json::parse(read_file(f));
  const std::pair<const char*, const char*> keys[] = {
      {"encoder", "sha256"}, {"templates", "sha256"}, {"dataset", "signature"}, {"model", "identity"}};
  const std::map<std::string, std::string> where = {
      {"encoder", "dir"}, {"templates", "path"}, {"dataset", "name"}, {"model", "name"}};
  for (const auto& [kind, key] : keys) {
    const std::string a = saved.value(kind, nlohmann::json::object()).value(key, "");
    const std::string b = s.inputs[kind][key];
    if (a == b) continue;
    const std::string msg = fmt::format(
        "{}: the checkpoint was trained with {} '{}' ({} {}), this config gives '{}' ({} {})", dir, kind,
        saved.value(kind, nlohmann::json::object()).value(where.at(kind), std::string("?")), key, a.substr(0, 12),
        s.inputs[kind][where.at(kind)].get<std::string>(), key, b.substr(0, 12));
    if (!other_inputs)
      throw CheckpointError(msg + ". Evaluate with the run's config.yaml, or pass --allow-other-inputs for a deliberate "
                                  "cross-evaluation");
    spdlog::warn("{} (allowed: --allow-other-inputs)", msg);
  }
}
}  // namespace

void load_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, bool other_inputs) {
  const std::string f = dir + "/sbtrec.safetensors";
  if (!path_exists(f))
    throw CheckpointError("'" + dir + "' is not an SBT-Rec checkpoint: no sbtrec.safetensors (sbtrec-train writes it "
                          "into <output_dir>/checkpoint/)");
  check_inputs(dir, s, other_inputs);
  std::map<std::string, std::string> meta;
  auto t = safetensors::load(f, std::nullopt, &meta);
  if (meta["format"] != kCheckpointFormat)
    throw CheckpointError(f + ": metadata format '" + meta["format"] + "', expected '" + kCheckpointFormat + "'");
  auto& m = *s.model;
  auto take = [&](const std::string& key, const std::string& why) {
    auto it = t.find(key);
    if (it == t.end())
      throw CheckpointError(f + ": no tensor '" + key + "', which this config needs (" + why +
                            "); evaluate with the config the run was trained with (its config.yaml)");
    auto v = it->second;
    t.erase(it);
    return v;
  };
  if (m.hdsd && m.hdsd->items) m.hdsd->items->load_codebooks(take("codebooks", "quantizer on items"), f + " key 'codebooks'");
  if (m.hdsd && m.hdsd->items && m.hdsd->items->has_index())
    m.hdsd->items->load_index_codebook(take("index_codebook", "quantizer.collisions: index"), f + " key 'index_codebook'");
  if (m.hdsd && m.hdsd->user)
    m.hdsd->user->load_codebooks(take("user_codebooks", "quantizer on user vectors"), f + " key 'user_codebooks'");
  auto load_module = [&](torch::nn::Module& mod, const std::string& prefix) {
    torch::NoGradGuard ng;
    for (auto& p : mod.named_parameters()) {
      const std::string key = prefix + p.key();
      auto v = take(key, prefix + " aligner");
      if (v.sizes() != p.value().sizes())
        throw CheckpointError(f + ": '" + key + "' is " + c10::str(v.sizes()) + " but the model's is " +
                              c10::str(p.value().sizes()) + " (aligner.type / hidden_size or the LLM differ)");
      p.value().copy_(v);
    }
  };
  load_module(*m.item_aligner, "item_aligner.");
  if (m.user_aligner) load_module(*m.user_aligner, "user_aligner.");
  t.erase("slot_embeddings");  // the mean-initialised rows of the slot tokens: inputs only, replaced in inputs_embeds
  if (!t.empty())
    throw CheckpointError(f + ": holds '" + t.begin()->first +
                          "', which this config does not use (quantizer.enabled, quantizer.inputs, quantizer.collisions "
                          "or prompt.user_token differ from the run's config.yaml)");
  llm::load_adapter(dir + "/adapter", *m.llm);
}

}  // namespace sbtrec::train
