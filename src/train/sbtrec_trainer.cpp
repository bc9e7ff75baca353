// SBT-Rec session, SBS-AO trainer, checkpoints, resumption and evaluation (see sbtrec_trainer.h).
#include "sbtrec/train/sbtrec_trainer.h"

#include <spdlog/spdlog.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/progress.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/encoder/encoder.h"
#include "sbtrec/eval/matcher.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/special_tokens.h"
#include "sbtrec/optim/fused_adam.h"
#include "sbtrec/quantizer/hdsd.h"

namespace sbtrec::train {

namespace {

constexpr const char* kCheckpointFormat = "sbtrec-checkpoint-1";
constexpr const char* kStateFormat = "sbtrec-train-state-1";

size_t split_slot(data::Split s) { return (size_t)data::split_code(s); }

// Purposes of the trainer's seeded streams (stream_key in common/counter_rng.h).
constexpr uint64_t kEpochOrder = 1, kEpochCandidates = 2, kStepDropout = 3, kCurriculum = 4, kShuffle = 5;

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

// CaseResults as bytes for the evaluation gather (exact: raw doubles, raw output bytes, which need
// not be valid UTF-8).
template <class T>
void put(std::string& b, const T& v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T take_pod(const std::string& b, size_t& at) {
  if (at + sizeof(T) > b.size()) throw Error("evaluation gather: a rank sent a truncated result");
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  at += sizeof v;
  return v;
}
std::string encode_cases(const std::vector<CaseResult>& cases) {
  std::string b;
  for (const auto& c : cases) {
    put(b, c.index);
    put(b, (uint8_t)(c.valid | (c.hit << 1)));
    put(b, c.rank);
    put(b, c.rank_permuted);
    put(b, c.rank_mean);
    put(b, (uint64_t)c.output.size());
    b += c.output;
    put(b, (uint64_t)c.named.size());
    for (int32_t x : c.named) put(b, x);
    put(b, (uint64_t)c.scores.size());
    for (double x : c.scores) put(b, x);
  }
  return b;
}
void decode_cases(const std::string& b, std::vector<CaseResult>& out) {
  for (size_t at = 0; at < b.size();) {
    CaseResult c;
    c.index = take_pod<int64_t>(b, at);
    const auto flags = take_pod<uint8_t>(b, at);
    c.valid = flags & 1;
    c.hit = flags & 2;
    c.rank = take_pod<int64_t>(b, at);
    c.rank_permuted = take_pod<int64_t>(b, at);
    c.rank_mean = take_pod<int64_t>(b, at);
    const auto len = take_pod<uint64_t>(b, at);
    if (at + len > b.size()) throw Error("evaluation gather: a rank sent a truncated result");
    c.output = b.substr(at, len);
    at += len;
    for (auto k = take_pod<uint64_t>(b, at); k > 0; --k) c.named.push_back(take_pod<int32_t>(b, at));
    for (auto k = take_pod<uint64_t>(b, at); k > 0; --k) c.scores.push_back(take_pod<double>(b, at));
    out.push_back(std::move(c));
  }
}

int64_t count(const std::vector<torch::Tensor>& ps) {
  int64_t n = 0;
  for (const auto& p : ps) n += p.numel();
  return n;
}


// Candidates ranked at least as high as the target (ties against it): 0 = the target is first.
int64_t target_rank(const std::vector<double>& scores, int64_t target) {
  int64_t rank = 0;
  for (int64_t c = 0; c < (int64_t)scores.size(); ++c)
    if (c != target && scores[(size_t)c] >= scores[(size_t)target]) ++rank;
  return rank;
}

// Token reliance's two altered prompts from one prompt's embeddings [1, P, E]: the candidates'
// tokens rotated by one candidate (the target's token sits on another title), and every behavioural
// token (items and user) replaced by their mean (no token tells one item from another).
std::pair<torch::Tensor, torch::Tensor> reliance_embeds(const prompt::PromptBatch& pb, const torch::Tensor& embeds) {
  const auto device = embeds.device();
  auto is_cand = pb.slot_kind == (int64_t)prompt::SlotKind::kCandidate;              // [S]
  auto cand_pos = pb.slot_position.index_select(0, torch::nonzero(is_cand).squeeze(1)).to(device);  // [C]
  auto all_pos = pb.slot_position.to(device);                                          // [S]
  auto row = embeds[0];                                                                // [P, E]
  auto permuted = row.clone();
  permuted.index_put_({cand_pos}, row.index_select(0, cand_pos.roll(-1)));
  auto mean = row.clone();
  mean.index_put_({all_pos}, row.index_select(0, all_pos).mean(0, true).expand({all_pos.size(0), row.size(1)}));
  return {permuted.unsqueeze(0), mean.unsqueeze(0)};  // [1, P, E] each
}


// SBS-AO's per-group instruments at a log step: each group's gradient norm (after clipping) and the
// norm of its update relative to its weights (||w_after - w_before|| / ||w_before||).
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
}  // namespace

// score_c = sum_t log p(a_c,t | prompt, a_c,<t): one prompt forward, its KV cache shared by the C answers.
std::vector<double> score_candidates(SbtRecSession& s, const prompt::PromptBatch& pb, const torch::Tensor& embeds,
                                     const data::CandidateSet& cs, const std::string& what) {
  auto& lm = *s.model->llm;
  const auto device = lm.model->embed_tokens->weight.device();
  const int64_t C = (int64_t)cs.items.size();
  const int64_t P = pb.input_ids.size(1);
  std::vector<std::vector<int64_t>> answers;  // each candidate's answer ids, as training appends them
  int64_t Tmax = 0;
  for (int32_t item : cs.items) {
    answers.push_back(s.builder->encode_answer(s.ds->titles[(size_t)item]));
    Tmax = std::max<int64_t>(Tmax, (int64_t)answers.back().size());
  }
  s.builder->check_length(P + Tmax, true, what);
  llm::KVCache cache(lm.config.num_hidden_layers, P + Tmax);
  llm::ForwardInputs in;
  in.inputs_embeds = embeds;                        // [1, P, E]
  in.attention_mask = pb.attention_mask.to(device);  // [1, P]
  in.cache = &cache;
  in.logits_to_keep = 1;
  auto first = torch::log_softmax(lm.forward(in), -1)[0][0].cpu();  // [V]: the first answer token
  std::vector<double> scores((size_t)C, 0.0);
  for (int64_t c = 0; c < C; ++c) scores[(size_t)c] = first[answers[(size_t)c].at(0)].item<double>();
  if (Tmax > 1) {
    cache.reorder(torch::zeros({C}, torch::TensorOptions().dtype(torch::kInt64).device(device)));
    auto ids = torch::full({C, Tmax - 1}, s.generation.pad_token_id, torch::kInt64);  // [C, Tmax - 1]
    auto mask = torch::zeros({C, P + Tmax - 1}, torch::kInt64);                       // [C, P + Tmax - 1]
    mask.slice(1, 0, P).fill_(1);
    for (int64_t c = 0; c < C; ++c)
      for (size_t t = 0; t + 1 < answers[(size_t)c].size(); ++t) {
        ids[c][(int64_t)t] = answers[(size_t)c][t];
        mask[c][P + (int64_t)t] = 1;
      }
    llm::ForwardInputs next;
    next.input_ids = ids.to(device);
    next.attention_mask = mask.to(device);
    next.cache = &cache;
    auto logp = torch::log_softmax(lm.forward(next), -1).cpu();  // [C, Tmax - 1, V]
    for (int64_t c = 0; c < C; ++c)
      for (size_t t = 1; t < answers[(size_t)c].size(); ++t)
        scores[(size_t)c] += logp[c][(int64_t)t - 1][answers[(size_t)c][t]].item<double>();
  }
  return scores;
}

// ---- session ----

SbtRecSession build_sbtrec(const Config& cfg, const data::Dataset& ds, bool fit_codebooks) {
  if (cfg.llm.model.empty())
    throw ConfigError("config key 'llm.model' is empty: SBT-Rec needs an LLM (default = SmolLM2-135M-Instruct, or a "
                      "Hugging Face Llama directory)");
  if (cfg.encoder.checkpoint.empty())
    throw ConfigError("config key 'encoder.checkpoint' is empty: SBT-Rec reads its behaviour vectors from a frozen "
                      "encoder. Train one (sbtrec-train --config configs/" + ds.name + "/sasrec.yaml) or import LLaRA's "
                      "(scripts/import_llara_checkpoint.py) and set encoder.checkpoint to its directory");
  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);
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

  // HDSD: only the kinds the prompts use.
  quantizer::Hdsd hdsd{nullptr};
  auto qo = cfg.quantizer;
  if (!s.user_token && qo.inputs == quantizer::QuantizerInputs::kBoth) qo.inputs = quantizer::QuantizerInputs::kItems;
  const bool quantize = qo.enabled && (s.user_token || qo.inputs != quantizer::QuantizerInputs::kUser);
  if (quantize) {
    if (!qo.codebooks.empty()) {
      hdsd = quantizer::Hdsd(qo, items.size(1), std::max<int64_t>(Z, 1));
      quantizer::load_hdsd_codebooks(qo.codebooks, *hdsd, qo.item_rows);
      spdlog::info("HDSD codebooks from {}", qo.codebooks);
    } else if (fit_codebooks) {
      auto fit = quantizer::fit_hdsd(qo, quantizer::kmeans_seed(qo, cfg.seed), *enc, ds, eo.max_len, cfg.eval.batch_size);
      hdsd = fit.hdsd;
      spdlog::info("HDSD fitted by k-means++: {}", fit.stats.dump());
    } else {
      hdsd = quantizer::Hdsd(qo, items.size(1), std::max<int64_t>(Z, 1));  // filled by a checkpoint
    }
  }

  torch::manual_seed(cfg.seed);  // LoRA A and the aligners' initialisation
  const torch::Device device(cfg.llm.device);
  auto lm = llm::load_llama(cfg.llm.model, llm::scalar_type(cfg.llm.dtype), device);
  s.tokenizer = llm::load_tokenizer(cfg.llm.model);
  s.slots = prompt::add_slot_tokens(*s.tokenizer, *lm);
  lm->add_lora(cfg.lora);
  lm->set_gradient_checkpointing(cfg.llm.activation_checkpointing);
  lm->set_gemm_dtype(llm::scalar_type(cfg.llm.gemm_dtype));
  s.model = SbtRecModel(lm, items, hdsd, s.user_token ? Z : 0, cfg.aligner);
  s.model->to(device);
  if (cfg.prompt.shuffle_items)
    s.model->set_item_permutation(torch::tensor(permutation(stream_key(cfg.seed, kShuffle, 0), ds.num_items)).to(device));

  const auto chat = llm::resolve_chat_format(cfg.llm.chat_format, llm::resolve_model(cfg.llm.model));
  auto templates = prompt::load_templates(prompt::templates_path(cfg.prompt, ds.name), cfg.prompt.format);
  s.builder = std::make_unique<prompt::PromptBuilder>(std::move(templates), *s.tokenizer, s.slots, chat,
                                                      cfg.llm.system_message, s.user_token,
                                                      lm->config.max_position_embeddings, cfg.prompt);
  s.generation = cfg.generation;
  s.generation.eos_token_ids = lm->config.eos_token_ids;
  auto add_eos = [&](int64_t id) {
    if (id >= 0 && std::find(s.generation.eos_token_ids.begin(), s.generation.eos_token_ids.end(), id) ==
                       s.generation.eos_token_ids.end())
      s.generation.eos_token_ids.push_back(id);
  };
  add_eos(s.tokenizer->eos_id());
  if (chat.format == llm::ChatFormat::kChatML) add_eos(s.tokenizer->token_to_id("<|im_end|>").value_or(-1));
  s.generation.pad_token_id = s.tokenizer->pad_id() >= 0 ? s.tokenizer->pad_id() : s.generation.eos_token_ids.at(0);
  llm::suppress_added_tokens(*s.tokenizer, s.generation);
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
  Cases c;
  for (int64_t i = begin; i < end; ++i) {
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

// ---- checkpoints ----

void save_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s, const std::string& config_yaml) {
  make_dirs(dir);
  auto& m = *s.model;
  llm::save_adapter(dir + "/adapter", *m.llm, s.cfg.llm.model);
  std::map<std::string, torch::Tensor> t;
  if (m.hdsd && m.hdsd->items) t["codebooks"] = m.hdsd->items->codebooks.detach().cpu();
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
}

void load_sbtrec_checkpoint(const std::string& dir, SbtRecSession& s) {
  const std::string f = dir + "/sbtrec.safetensors";
  if (!path_exists(f))
    throw CheckpointError("'" + dir + "' is not an SBT-Rec checkpoint: no sbtrec.safetensors (sbtrec-train writes it "
                          "into <output_dir>/checkpoint/)");
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
                          "', which this config does not use (quantizer.enabled, quantizer.inputs or prompt.user_token "
                          "differ from the run's config.yaml)");
  llm::load_adapter(dir + "/adapter", *m.llm);
}

// ---- evaluation ----

nlohmann::json SbtRecEval::to_json() const {
  auto j = metrics.to_json();
  int64_t hits = 0, valid = 0;
  for (const auto& c : cases) hits += c.hit, valid += c.valid;
  j["hits"] = hits;
  j["valid"] = valid;
  j["hr@1_of_valid"] = valid > 0 ? (double)hits / valid : 0.0;  // LLaRA's code's test_hr
  j["split"] = data::split_name(split);
  j["mode"] = config::choice_name(eval_modes(), mode);
  // Token reliance (eval.token_reliance, likelihood mode): how far the target's rank moves when the
  // behavioural tokens are moved off their items or averaged away. 0 = the model ignores the tokens.
  int64_t n = 0, hit_p = 0, hit_m = 0;
  double shift_p = 0, shift_m = 0;
  for (const auto& c : cases)
    if (c.rank_permuted >= 0) {
      ++n;
      hit_p += c.rank_permuted == 0;
      hit_m += c.rank_mean == 0;
      shift_p += (double)(c.rank_permuted - c.rank);
      shift_m += (double)(c.rank_mean - c.rank);
    }
  if (n > 0) {
    j["hr@1_tokens_permuted"] = (double)hit_p / (double)n;
    j["hr@1_tokens_mean"] = (double)hit_m / (double)n;
    j["rank_shift_permuted"] = shift_p / (double)n;
    j["rank_shift_mean"] = shift_m / (double)n;
  }
  return j;
}

SbtRecEval evaluate_sbtrec(SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                           dist::ProcessGroup* group, const EvalScope& scope) {
  const auto& samples = s.ds->split(split);
  eval::check_candidates(samples, candidates, s.ds->num_items, data::split_name(split));
  int64_t n = (int64_t)samples.size();
  const int64_t cap = scope.max_cases > 0 ? scope.max_cases
                      : split == data::Split::kVal && s.cfg.eval.max_val_cases > 0 ? s.cfg.eval.max_val_cases
                                                                                    : s.cfg.eval.max_cases;
  if (cap > 0) n = std::min(n, cap);
  torch::NoGradGuard no_grad;
  const bool was_training = s.model->is_training();
  s.model->eval();
  auto& lm = *s.model->llm;
  const auto device = lm.model->embed_tokens->weight.device();
  const bool hybrid = s.cfg.prompt.hybrid;
  const EvalMode mode = scope.mode.value_or(s.cfg.eval.mode);
  const bool likelihood = mode == EvalMode::kLikelihood;
  const int64_t B = likelihood ? 1 : s.cfg.eval.llm_batch_size;
  SbtRecEval out;
  out.split = split;
  out.mode = mode;
  // Batch k goes to rank k mod W.
  const int W = group ? group->size() : 1, R = group ? group->rank() : 0;
  const int64_t batches = (n + B - 1) / B, mine = batches / W + (R < batches % W ? 1 : 0);
  Progress progress(fmt::format("eval {} ({})", data::split_name(split), likelihood ? "likelihood" : "generation"), mine,
                    B, s.cfg.train.log_every);
  int64_t hits = 0;    // this rank's hits among its first `counted` cases (the progress line's HR@1)
  size_t counted = 0;
  for (int64_t start = 0, k = 0, done = 0; start < n; start += B, ++k) {
    if (k % W != R) continue;
    const auto batch_cases = s.eval_cases(split, start, std::min(n, start + B), candidates);
    const auto& rows = batch_cases.rows;
    const auto& cands = batch_cases.candidates;
    const auto& tmpls = batch_cases.templates;
    auto titles_of = [&](const data::CandidateSet& c) {
      std::vector<std::string> t;
      for (int32_t item : c.items) t.push_back(s.ds->titles[(size_t)item]);
      return t;
    };
    if (!likelihood) {
      auto b = s.batch(split, rows, cands, tmpls, hybrid, false, true);
      auto embeds = s.model->inputs_embeds(b, s.users(split, rows));                                       // [B, P, E]
      auto gen = llm::generate_from_embeds(lm, embeds, b.attention_mask.to(device), s.generation).cpu();  // [B, N]
      for (size_t r = 0; r < rows.size(); ++r) {
        std::vector<int64_t> ids;
        for (int64_t t = 0; t < gen.size(1); ++t) {
          const int64_t id = gen[(int64_t)r][t].item<int64_t>();
          if (std::find(s.generation.eos_token_ids.begin(), s.generation.eos_token_ids.end(), id) !=
              s.generation.eos_token_ids.end())
            break;
          ids.push_back(id);
        }
        CaseResult c;
        c.index = rows[r];
        c.output = s.tokenizer->decode(ids, true);
        const auto m = eval::match_generation(c.output, titles_of(*cands[r]), cands[r]->target_index);
        for (int k2 : m.named_indices) c.named.push_back(cands[r]->items[(size_t)k2]);
        c.valid = m.valid;
        c.hit = m.hit;
        out.cases.push_back(std::move(c));
      }
    } else {
      const auto& cs = *cands[0];
      auto pb = s.batch(split, rows, cands, tmpls, hybrid, false, true);  // the prompt once: [1, P]
      auto embeds = s.model->inputs_embeds(pb, s.users(split, rows));     // [1, P, E]
      const auto scores = score_candidates(s, pb, embeds, cs, fmt::format("{} sample {}", data::split_name(split), rows[0]));
      const int64_t rank = target_rank(scores, cs.target_index);
      int64_t best = 0;
      for (int64_t c = 0; c < (int64_t)scores.size(); ++c)
        if (scores[(size_t)c] > scores[(size_t)best]) best = c;
      CaseResult r;
      if (s.cfg.eval.token_reliance && hybrid) {
        // The same prompt with its behavioural tokens moved: each candidate's token given to the next
        // candidate (cyclically), and every token replaced by the prompt's mean token.
        torch::Tensor permuted, mean;
        std::tie(permuted, mean) = reliance_embeds(pb, embeds);
        r.rank_permuted = target_rank(score_candidates(s, pb, permuted, cs, ""), cs.target_index);
        r.rank_mean = target_rank(score_candidates(s, pb, mean, cs, ""), cs.target_index);
      }
      r.index = rows[0];
      r.output = s.ds->titles[(size_t)cs.items[(size_t)best]];
      r.named = {cs.items[(size_t)best]};
      r.valid = true;
      r.hit = rank == 0;
      r.scores = scores;
      r.rank = rank;
      out.cases.push_back(std::move(r));
    }
    for (; counted < out.cases.size(); ++counted) hits += out.cases[counted].hit;
    progress.update(++done, counted ? (double)hits / (double)counted : 0.0, "hr@1");
  }
  progress.finish();
  if (W > 1) {
    const auto parts = group->all_gather_bytes(encode_cases(out.cases), std::string("evaluation of ") + data::split_name(split));
    out.cases.clear();
    for (const auto& p : parts) decode_cases(p, out.cases);
    std::sort(out.cases.begin(), out.cases.end(), [](const CaseResult& a, const CaseResult& b) { return a.index < b.index; });
  }
  eval::MetricsAccumulator acc;  // in case order, whatever rank evaluated a case
  for (const auto& c : out.cases) {
    if (likelihood)
      acc.add_candidate_rank(c.rank);
    else
      acc.add_candidate_case(c.hit, c.valid);
  }
  out.metrics = acc.finalize();
  if (was_training) s.model->train();
  return out;
}

nlohmann::json attention_on_slots(SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                                  int64_t max_cases) {
  if (!s.cfg.prompt.hybrid) throw ConfigError("attention on slots: prompt.hybrid is false, the prompts have no slots");
  const auto& samples = s.ds->split(split);
  eval::check_candidates(samples, candidates, s.ds->num_items, data::split_name(split));
  const int64_t n = std::min<int64_t>((int64_t)samples.size(), max_cases);
  torch::NoGradGuard no_grad;
  s.model->eval();
  auto& lm = *s.model->llm;
  const auto device = lm.model->embed_tokens->weight.device();
  const int64_t Lyr = lm.config.num_hidden_layers, H = lm.config.num_attention_heads;
  // Sums over cases: [L, H] per slot group, and per head the target's share of the candidate-slot mass.
  auto zeros = [&] { return torch::zeros({Lyr, H}, torch::kFloat64); };
  auto target = zeros(), other = zeros(), user = zeros(), history = zeros(), share = zeros();
  auto target_seg = zeros(), other_seg = zeros(), seg_share = zeros();
  const bool before = s.cfg.prompt.slot_position == prompt::SlotPosition::kBeforeTitle;
  int64_t C = 0;
  Progress progress(fmt::format("attention {}", data::split_name(split)), n, 1, s.cfg.train.log_every);
  for (int64_t i = 0; i < n; ++i) {
    const auto c = s.eval_cases(split, i, i + 1, candidates);
    auto pb = s.batch(split, c.rows, c.candidates, c.templates, true, false, true);  // [1, P]
    std::vector<torch::Tensor> probe;
    llm::ForwardInputs in;
    in.inputs_embeds = s.model->inputs_embeds(pb, s.users(split, c.rows));  // [1, P, E]
    in.attention_mask = pb.attention_mask.to(device);
    in.logits_to_keep = 1;
    in.attention_probe = &probe;
    lm.forward(in);
    auto w = torch::stack(probe).select(1, 0).to(torch::kFloat64).cpu();  // [L, H, P]
    const auto& cs = *c.candidates[0];
    C = (int64_t)cs.items.size();
    std::vector<int64_t> cand_pos, hist_pos, user_pos;
    for (int64_t k = 0; k < pb.slot_kind.size(0); ++k) {
      const int64_t pos = pb.slot_position[k].item<int64_t>(), kind = pb.slot_kind[k].item<int64_t>();
      (kind == (int64_t)prompt::SlotKind::kCandidate ? cand_pos : kind == (int64_t)prompt::SlotKind::kUser ? user_pos : hist_pos)
          .push_back(pos);
    }
    auto mass = [&](const std::vector<int64_t>& pos) {  // [L, H]
      return pos.empty() ? zeros() : w.index_select(2, torch::tensor(pos, torch::kInt64)).sum(2);
    };
    auto t = w.select(2, cand_pos.at((size_t)cs.target_index));  // [L, H]
    auto all = mass(cand_pos);
    target += t;
    other += (all - t) / (double)std::max<int64_t>(1, C - 1);
    // Each candidate's segment: its slot and its title (the tokens up to the neighbouring candidate's
    // slot, at most 17 with the slot), where an induction head that matched the slot would look.
    auto segment = [&](size_t k) {
      std::vector<int64_t> pos;
      if (before) {
        // the last one: as long as the one before it (the candidate list ends there)
        const int64_t end = k + 1 < cand_pos.size() ? cand_pos[k + 1]
                            : k > 0                 ? 2 * cand_pos[k] - cand_pos[k - 1]
                                                    : cand_pos[k] + 1;
        for (int64_t p = cand_pos[k]; p < std::min(end, cand_pos[k] + 17); ++p) pos.push_back(p);
      } else {
        // the first one: as long as the one after it (the candidate list starts there)
        const int64_t begin = k > 0 ? cand_pos[k - 1] + 1 : k + 1 < cand_pos.size() ? 2 * cand_pos[k] - cand_pos[k + 1] + 1 : cand_pos[k];
        for (int64_t p = std::max(begin, cand_pos[k] - 16); p <= cand_pos[k]; ++p) pos.push_back(p);
      }
      return mass(pos);
    };
    torch::Tensor seg_all = zeros(), seg_t;
    for (size_t k = 0; k < cand_pos.size(); ++k) {
      auto m = segment(k);
      seg_all += m;
      if ((int64_t)k == cs.target_index) seg_t = m;
    }
    target_seg += seg_t;
    other_seg += (seg_all - seg_t) / (double)std::max<int64_t>(1, C - 1);
    seg_share += seg_t / seg_all.clamp_min(1e-12);
    user += mass(user_pos);
    history += mass(hist_pos);
    share += t / all.clamp_min(1e-12);
    progress.update(i + 1, share.mean().item<double>() / (double)(i + 1), "target share");
  }
  progress.finish();
  nlohmann::json layers = nlohmann::json::array();
  for (int64_t l = 0; l < Lyr; ++l) {
    const int64_t best = share[l].argmax().item<int64_t>(), best_seg = seg_share[l].argmax().item<int64_t>();
    layers.push_back({{"layer", l},
                      {"target_slot", target[l].mean().item<double>() / (double)n},
                      {"other_candidate_slot", other[l].mean().item<double>() / (double)n},
                      {"user_slot", user[l].mean().item<double>() / (double)n},
                      {"history_slots", history[l].mean().item<double>() / (double)n},
                      {"best_head", best},
                      {"best_head_target_share", share[l][best].item<double>() / (double)n},
                      {"target_segment", target_seg[l].mean().item<double>() / (double)n},
                      {"other_candidate_segment", other_seg[l].mean().item<double>() / (double)n},
                      {"best_segment_head", best_seg},
                      {"best_segment_head_target_share", seg_share[l][best_seg].item<double>() / (double)n}});
  }
  return {{"split", data::split_name(split)}, {"cases", n}, {"chance_target_share", C ? 1.0 / (double)C : 0.0}, {"layers", layers}};
}

void write_predictions(const std::string& path, const SbtRecSession& s, const SbtRecEval& e,
                       const std::vector<data::CandidateSet>& candidates) {
  const auto& samples = s.ds->split(e.split);
  atomic_write(path, [&](std::ostream& os) {
    for (const auto& c : e.cases) {
      const auto& sample = samples[(size_t)c.index];
      const auto& cs = candidates[(size_t)c.index];
      // Item ids as in the dataset's own files (u.data's item ids), not the internal 0..N-1.
      auto raw = [&](const std::vector<int32_t>& items) {
        std::vector<int64_t> out;
        for (int32_t item : items) out.push_back(s.ds->raw_item_ids[(size_t)item]);
        return out;
      };
      std::vector<std::string> titles;
      for (int32_t item : cs.items) titles.push_back(s.ds->titles[(size_t)item]);
      nlohmann::json j = {{"user", sample.user},
                          {"candidates", raw(cs.items)},
                          {"candidate_titles", titles},
                          {"target", s.ds->raw_item_ids[(size_t)sample.target]},
                          {"target_title", s.ds->titles[(size_t)sample.target]},
                          {"output", c.output},
                          {"named", raw(c.named)},
                          {"valid", c.valid},
                          {"hit", c.hit},
                          {"case", c.index},
                          {"history", raw(sample.history)}};
      if (!c.scores.empty()) j["scores"] = c.scores;
      if (c.rank >= 0) j["rank"] = c.rank;
      if (c.rank_permuted >= 0) {
        j["rank_tokens_permuted"] = c.rank_permuted;
        j["rank_tokens_mean"] = c.rank_mean;
      }
      os << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
  });
}

// ---- training ----

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

bool hybrid_step(const TrainOptions& o, uint64_t seed, int64_t step, int64_t total) {
  switch (o.paradigm) {
    case Paradigm::kSingleStage:
      return true;
    case Paradigm::kTwoStage:
      return (double)step >= o.two_stage_fraction * (double)total;
    case Paradigm::kCurriculum: {
      const double u = (double)(splitmix64(stream_key(seed, kCurriculum, (uint64_t)step)) >> 11) * 0x1.0p-53;  // [0, 1)
      return u < (double)step / (double)std::max<int64_t>(1, total);
    }
  }
  return true;
}

double sbtrec_step(SbtRecModelImpl& model, torch::optim::Optimizer& optimizer,
                   const std::vector<std::pair<prompt::PromptBatch, torch::Tensor>>& micro, double max_grad_norm,
                   dist::ProcessGroup* group, int64_t bucket_bytes) {
  optimizer.zero_grad();
  // Supervised tokens: labels predicted from the previous position (the loss shifts by one).
  auto supervised = [](const prompt::PromptBatch& b) {
    return b.labels.slice(1, 1).ne(-100).sum().item<int64_t>();
  };
  std::vector<int64_t> counts;
  int64_t local = 0;
  for (const auto& mb : micro) local += counts.emplace_back(supervised(mb.first));
  const double total = group ? group->all_reduce_sum((double)local, "supervised-token count") : (double)local;
  if (total <= 0) throw Error("SBT-Rec step: the global batch has no supervised answer tokens");
  double loss = 0;
  for (size_t i = 0; i < micro.size(); ++i) {
    const auto& [batch, users] = micro[i];
    // token mean x this micro-batch's share of the global tokens = its token sum / global count
    auto l = model.loss(batch, users) * ((double)counts[i] / total);
    l.backward();
    loss += l.item<double>();
  }
  std::vector<torch::Tensor> params;
  for (auto& g : optimizer.param_groups())
    for (auto& p : g.params()) params.push_back(p);
  if (group && group->size() > 1) {
    dist::all_reduce_gradients(*group, params, bucket_bytes);
    loss = group->all_reduce_sum(loss, "loss");
  }
  if (max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  optimizer.step();
  return loss;
}

nlohmann::json train_sbtrec(const Config& cfg, const data::Dataset& ds, Run& run, const SbtRecTrainOptions& options) {
  if (ds.train.empty()) throw DataError(ds.root + ": the training split has no samples");
  const auto& t = cfg.train;
  dist::ProcessGroup single;
  dist::ProcessGroup& group = options.group ? *options.group : single;
  const int W = group.size(), R = group.rank();
  const int64_t bucket_bytes = (int64_t)(cfg.dist.bucket_mb * (1 << 20));
  run.set_writes(group.main());
  // Fault injection for the tests of a dying rank: SBTREC_FAULT_KILL_AT_STEP=k (and SBTREC_FAULT_RANK=r
  // to pick one rank under --nproc) makes the process SIGKILL itself when step k starts.
  const char* kill_at = std::getenv("SBTREC_FAULT_KILL_AT_STEP");
  const char* kill_rank = std::getenv("SBTREC_FAULT_RANK");
  const int64_t fault_step = kill_at ? std::atoll(kill_at) : 0;
  const bool fault_here = fault_step > 0 && (!kill_rank || std::atoi(kill_rank) == R);
  // Everything that can fail on the inputs happens before the run directory is written.
  const auto val_c = data::make_candidates(ds, data::Split::kVal, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const auto test_c = data::make_candidates(ds, data::Split::kTest, cfg.eval.num_negatives, cfg.eval.candidate_seed);
  const std::string state_dir = run.dir() + "/state";
  nlohmann::json state;
  if (options.resume) {
    if (!path_exists(state_dir + "/state.json"))
      throw ConfigError("--resume '" + run.dir() + "': no state/state.json (the run saved no training state yet)");
    state = nlohmann::json::parse(read_file(state_dir + "/state.json"));
    if (state.value("format", "") != kStateFormat)
      throw CheckpointError(state_dir + "/state.json: format '" + state.value("format", "") + "', expected " + kStateFormat);
    const std::string diff = first_difference(read_file(run.dir() + "/config.yaml"), run.config_yaml());
    if (!diff.empty())
      throw ConfigError("--resume '" + run.dir() + "': the config differs from the run's config.yaml (" + diff +
                        "); resume with --config " + run.dir() + "/config.yaml");
    const int saved_world = state.value("world_size", 1);
    if (saved_world != W)
      throw ConfigError(fmt::format("--resume '{}': the run was trained with world size {} and this launch has {} "
                                    "(each rank's share of a batch depends on it); resume with --nproc {} or the same "
                                    "launcher layout",
                                    run.dir(), saved_world, W, saved_world));
  }
  // Each rank's device (cuda:LOCAL_RANK when the config names CUDA without an index); the run's
  // config.yaml keeps what the user wrote.
  Config rank_cfg = cfg;
  rank_cfg.llm.device = dist::rank_device(cfg.llm.device, group.world()).str();
  auto s = build_sbtrec(rank_cfg, ds, /*fit_codebooks=*/!options.resume);
  std::vector<double> peak_lr;
  std::vector<std::string> group_names;
  auto optimizer = make_sbtrec_optimizer(t, *s.model, peak_lr, group_names);
  for (size_t g = 0; g < group_names.size(); ++g)
    spdlog::info("parameter group {}: {} parameters, lr {:g}", group_names[g],
                 count(optimizer->param_groups()[g].params()), peak_lr[g]);
  spdlog::info("{}", s.model->llm->trainable_report());

  const int64_t S = (int64_t)ds.train.size(), B = t.batch_size, A = t.accumulation;
  const int64_t G = B * W;  // samples of one micro-batch over all ranks
  const int64_t micro_per_epoch = (S + G - 1) / G;
  const int64_t steps_per_epoch = (micro_per_epoch + A - 1) / A;
  const int64_t total = t.max_steps > 0 ? t.max_steps : (int64_t)t.epochs * steps_per_epoch;
  const int64_t epochs = (total + steps_per_epoch - 1) / steps_per_epoch;
  const int64_t window = std::max<int64_t>(1, std::min<int64_t>(10, total / 4));  // first_loss / last_loss averages
  int64_t step = 0;
  double first_sum = 0, last_sum = 0, window_sum = 0;
  int64_t window_n = 0, tokens = 0, tokens_at_log = 0;
  auto log_time = std::chrono::steady_clock::now();
  auto save = [&](const std::string& dir) { save_sbtrec_checkpoint(dir, s, run.config_yaml()); };
  if (options.resume) {
    step = state.at("step").get<int64_t>();
    if (state.at("total_steps").get<int64_t>() != total)
      throw ConfigError("--resume: the run's schedule has " + std::to_string(state["total_steps"].get<int64_t>()) +
                        " steps, this config " + std::to_string(total));
    load_sbtrec_checkpoint(state_dir + "/checkpoint", s);
    torch::load(*optimizer, state_dir + "/optimizer.pt");
    first_sum = state.at("first_sum");
    last_sum = state.at("last_sum");
    window_sum = state.at("window_sum");
    window_n = state.at("window_n");
    run.restore(state.at("best_epoch"), state.at("since_best"), eval::Metrics::from_json(state.at("best")));
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
  for (size_t g = 0; g < optimizer->param_groups().size(); ++g)
    for (size_t i = 0; i < optimizer->param_groups()[g].params().size(); ++i) {
      trainables.push_back(optimizer->param_groups()[g].params()[i]);
      trainable_names.push_back(fmt::format("{} parameter {}", group_names[g], i));
    }
  group.barrier("start");  // every rank has checked the run directory before rank 0 writes into it
  run.start();
  auto save_state = [&](bool stopped) {
    if (W > 1) {
      dist::check_identical(group, trainables, trainable_names, fmt::format("trainables after step {}", step));
      spdlog::info("trainables identical on {} ranks ({} tensors) after step {}", W, trainables.size(), step);
    }
    if (!group.main()) return;
    atomic_write_dir(state_dir, [&](const std::string& d) {
      save_sbtrec_checkpoint(d + "/checkpoint", s, run.config_yaml());
      torch::save(*optimizer, d + "/optimizer.pt");
      nlohmann::json j = {{"format", kStateFormat},      {"step", step},
                          {"total_steps", total},        {"best_epoch", run.best_epoch()},
                          {"since_best", run.since_best()}, {"best", run.best().to_json()},
                          {"first_sum", first_sum},      {"last_sum", last_sum},
                          {"window_sum", window_sum},    {"window_n", window_n},
                          {"stopped", stopped},          {"world_size", W}};
      atomic_write_string(d + "/state.json", j.dump(2) + "\n");
    });
  };
  spdlog::info("SBT-Rec on {}: {} samples, batch {} x {} processes x {} accumulation, {} steps/epoch, {} steps ({} epochs), "
               "paradigm {}",
               ds.name, S, B, W, A, steps_per_epoch, total, epochs, config::choice_name(paradigms(), t.paradigm));
  // A learning-curve point: the first curve_cases validation cases scored by candidate likelihood
  // (with eval.token_reliance, also with the tokens moved), logged as split val_curve.
  auto curve_point = [&](int64_t at_step, int64_t epoch) {
    const auto e = evaluate_sbtrec(s, data::Split::kVal, val_c, &group, {EvalMode::kLikelihood, t.curve_cases});
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
  };
  s.model->train();
  if (t.curve_every > 0 && step == 0) curve_point(0, 0);
  int64_t done = 0;
  bool early_stop = false;
  for (int64_t epoch = 1; epoch <= epochs && !early_stop; ++epoch) {
    const int64_t first = (epoch - 1) * steps_per_epoch, last = std::min(total, epoch * steps_per_epoch);
    if (step >= last) continue;  // finished before a resume
    const auto order = permutation(stream_key(cfg.seed, kEpochOrder, (uint64_t)epoch), S);
    const auto train_c = data::make_candidates(ds, data::Split::kTrain, cfg.eval.num_negatives,
                                               stream_key(cfg.seed, kEpochCandidates, (uint64_t)epoch));
    Progress progress = run.progress(fmt::format("epoch {}/{}", epoch, epochs), last - first, G * A);
    double epoch_sum = 0;
    int64_t epoch_n = 0;
    for (; step < last; ++step) {
      if (options.stop_after > 0 && done == options.stop_after) {
        progress.finish();
        save_state(true);
        spdlog::info("stopped after {} steps (step {} of {}); continue with --resume {}", done, step, total, run.dir());
        return {{"stopped", true}, {"step", step}, {"total_steps", total}, {"output_dir", run.dir()}};
      }
      const int64_t k = step - first;
      if (fault_here && step + 1 == fault_step) {
        spdlog::warn("SBTREC_FAULT_KILL_AT_STEP={}: rank {} kills itself (SIGKILL)", fault_step, R);
        ::raise(SIGKILL);
      }
      const bool hybrid = cfg.prompt.hybrid && hybrid_step(t, cfg.seed, step, total);
      // Dropout keyed by (seed, step, rank): one process draws what rank 0 of a world of one draws.
      torch::manual_seed(stream_key(cfg.seed, kStepDropout, (uint64_t)step * (uint64_t)W + (uint64_t)R));
      // One template per optimizer step, whatever the split into micro-batches and ranks.
      const size_t tmpl = prompt::training_template(cfg.seed, epoch, k, s.builder->num_templates());
      std::vector<std::pair<prompt::PromptBatch, torch::Tensor>> micro;
      for (int64_t a = 0; a < A; ++a) {
        const int64_t mb = k * A + a;
        if (mb * G >= S) break;
        const int64_t begin = mb * G + R * B, end = std::min(S, begin + B);
        if (begin >= end) continue;  // the epoch's tail leaves this rank nothing here; it still joins the step
        std::vector<int64_t> rows(order.begin() + begin, order.begin() + end);
        std::vector<const data::CandidateSet*> cands;
        for (int64_t r : rows) cands.push_back(&train_c[(size_t)r]);
        const std::vector<size_t> tmpls(rows.size(), tmpl);
        auto b = s.batch(data::Split::kTrain, rows, cands, tmpls, hybrid, true, false);
        tokens += b.attention_mask.sum().item<int64_t>();
        micro.emplace_back(std::move(b), s.users(data::Split::kTrain, rows));
      }
      const double f = schedule_factor(t, step, total);
      for (size_t g = 0; g < optimizer->param_groups().size(); ++g)
        optimizer->param_groups()[g].options().set_lr(peak_lr[g] * f);
      const bool log_now = (step + 1) % t.log_every == 0 || step + 1 == total;
      GroupStats stats(*optimizer, group_names, log_now && t.group_stats);
      const double loss = sbtrec_step(*s.model, *optimizer, micro, t.max_grad_norm, &group, bucket_bytes);
      if (!std::isfinite(loss))
        throw Error(fmt::format("step {}: the loss is {} (lower train.lr or set train.max_grad_norm)", step + 1, loss));
      ++done;
      if (step < window) first_sum += loss;
      if (step >= total - window) last_sum += loss;
      window_sum += loss;
      ++window_n;
      epoch_sum += loss;
      ++epoch_n;
      progress.update(k + 1, epoch_sum / epoch_n);
      if (log_now) {
        const auto now = std::chrono::steady_clock::now();
        const double all_tokens = group.all_reduce_sum((double)(tokens - tokens_at_log), "token count for the log");
        const double tps = all_tokens / std::chrono::duration<double>(now - log_time).count();
        spdlog::info("step {}/{} loss {:.4f} lr {:.3g} {:.0f} tokens/s", step + 1, total, window_sum / window_n,
                     peak_lr.back() * f, tps);
        nlohmann::json record = {{"epoch", epoch}, {"step", step + 1}, {"split", "train"}, {"loss", window_sum / window_n},
                                 {"lr", peak_lr.back() * f}, {"hybrid_last", hybrid}, {"tokens_per_s", tps}};
        stats.finish(record);
        run.log(record);
        log_time = now;
        tokens_at_log = tokens;
        window_sum = 0;
        window_n = 0;
      }
      if (t.curve_every > 0 && (step + 1) % t.curve_every == 0) curve_point(step + 1, epoch);
    }
    progress.finish();
    spdlog::info("epoch {}: mean loss {:.4f}, {:.1f} samples/s, {} tokens so far", epoch, epoch_n ? epoch_sum / epoch_n : 0,
                 progress.samples_per_second(), tokens);
    if (run.validation_due((int)epoch) || step == total) {
      const auto val = evaluate_sbtrec(s, data::Split::kVal, val_c, &group);
      const bool improved = run.report_validation((int)epoch, step, val.metrics, save);
      spdlog::info("epoch {} val HR@1 {:.4f} ValidRatio {:.4f} (n {}){}", epoch, val.metrics.hr1.value_or(0),
                   val.metrics.valid_ratio.value_or(0), val.metrics.n, improved ? " (best)" : "");
      if (run.should_stop()) {
        spdlog::info("early stop: no better validation for {} evaluations (best epoch {})", t.patience, run.best_epoch());
        early_stop = true;
      }
    }
    save_state(false);
  }
  if (run.best_epoch() < 0)
    run.report_validation(0, step, evaluate_sbtrec(s, data::Split::kVal, val_c, &group).metrics, save);

  // The best checkpoint: rank 0 reads it, the others receive its trainables.
  if (group.main()) load_sbtrec_checkpoint(run.checkpoint_dir(), s);
  if (W > 1) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> values;
    for (auto& p : trainables) values.push_back(p.detach().clone());
    group.broadcast(values, 0, "best checkpoint");
    for (size_t i = 0; i < trainables.size(); ++i) trainables[i].detach().copy_(values[i]);
  }
  const auto test = evaluate_sbtrec(s, data::Split::kTest, test_c, &group);
  run.log(metrics_record(run.best_epoch(), step, "test", test.metrics));
  if (group.main()) write_predictions(run.dir() + "/predictions.jsonl", s, test, test_c);
  return run.finish({{"model", "sbtrec"},
                     {"dataset", ds.name},
                     {"seed", cfg.seed},
                     {"paradigm", config::choice_name(paradigms(), t.paradigm)},
                     {"steps", step},
                     {"total_steps", total},
                     {"first_loss", first_sum / (double)window},
                     {"last_loss", last_sum / (double)window},
                     {"test", test.to_json()}});
}

}  // namespace sbtrec::train
