// SBT-Rec's evaluators and the evaluation driver (see sbtrec_evaluators.h).
#include "sbtrec/eval/sbtrec_evaluators.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/progress.h"
#include "sbtrec/eval/matcher.h"
#include "sbtrec/eval/registry.h"

namespace sbtrec::eval {

namespace {

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

std::vector<std::string> titles_of(const train::SbtRecSession& s, const data::CandidateSet& c) {
  std::vector<std::string> t;
  for (int32_t item : c.items) t.push_back(s.ds->titles[(size_t)item]);
  return t;
}

// The number of leading tokens that every prompt of a left-padded batch shares and that hold no
// behavioural slot (their embeddings are the token embeddings, the same in every row).
int64_t shared_prefix_length(const prompt::PromptBatch& b) {
  const auto ids = b.input_ids.contiguous();  // [B, P]
  const int64_t B = ids.size(0), P = ids.size(1);
  auto ia = ids.accessor<int64_t, 2>();
  int64_t q = *std::min_element(b.prompt_lengths.begin(), b.prompt_lengths.end());
  auto sb = b.slot_batch.accessor<int64_t, 1>();
  auto sp = b.slot_position.accessor<int64_t, 1>();
  for (int64_t k = 0; k < b.slot_batch.size(0); ++k)  // before each row's first slot
    q = std::min(q, sp[k] - (P - b.prompt_lengths[(size_t)sb[k]]));
  for (int64_t j = 0; j < q; ++j)
    for (int64_t r = 1; r < B; ++r)
      if (ia[r][P - b.prompt_lengths[(size_t)r] + j] != ia[0][P - b.prompt_lengths[0] + j]) return j;
  return std::max<int64_t>(q, 0);
}

// The batch's prompts decoded with `g` (left-padded, KV cache; the batch's shared start run once when
// eval.shared_prefix): the generated ids [B, N] on the CPU.
torch::Tensor generate_batch(train::SbtRecSession& s, data::Split split, const train::SbtRecSession::Cases& cases,
                             const llm::GenerationOptions& g) {
  auto& lm = *s.model->llm;
  const auto device = lm.model->embed_tokens->weight.device();
  const auto& rows = cases.rows;
  auto b = s.batch(split, rows, cases.candidates, cases.templates, s.cfg.prompt.hybrid, false, true);
  auto embeds = s.model->inputs_embeds(b, s.users(split, rows));                                       // [B, P, E]
  torch::Tensor gen;
  const int64_t Q = s.cfg.eval.shared_prefix ? shared_prefix_length(b) : 0;
  if (spdlog::should_log(spdlog::level::debug))  // SPDLOG_LEVEL=debug (bench/sbtrec_eval_parts.sh)
    spdlog::debug("generation batch: {} prompts, {} positions padded to {}, shared prefix {}", rows.size(),
                  b.attention_mask.sum().item<int64_t>(), b.input_ids.numel(), Q);
  if (Q > 0) {
    // The batch's common start (no slot in it) from the evaluation's cache, then each row's own tokens.
    const auto ids = b.input_ids;                                             // [B, P]
    const int64_t P = ids.size(1), z0 = P - b.prompt_lengths[0];
    const std::vector<int64_t> key(ids[0].data_ptr<int64_t>() + z0, ids[0].data_ptr<int64_t>() + z0 + Q);
    auto it = s.prefix_cache.find(key);
    if (it == s.prefix_cache.end())
      it = s.prefix_cache.emplace(key, llm::prefill_prefix(lm, embeds.narrow(0, 0, 1).narrow(1, z0, Q))).first;
    // Row r keeps its padding and drops its first Q real tokens: position j reads j (padding) or j + Q.
    auto idx = torch::empty({(int64_t)rows.size(), P - Q}, torch::kInt64);  // [B, P - Q]
    auto ia = idx.accessor<int64_t, 2>();
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t z = P - b.prompt_lengths[r];
      for (int64_t j = 0; j < P - Q; ++j) ia[(int64_t)r][j] = j < z ? j : j + Q;
    }
    auto rest = embeds.gather(1, idx.to(device).unsqueeze(-1).expand({-1, -1, embeds.size(2)}));  // [B, P - Q, E]
    auto mask = b.attention_mask.gather(1, idx);                                                   // [B, P - Q]
    gen = llm::generate_from_embeds(lm, rest, mask.to(device), g, &it->second).cpu();    // [B, N]
  } else {
    gen = llm::generate_from_embeds(lm, embeds, b.attention_mask.to(device), g).cpu();  // [B, N]
  }
  return gen;
}

// Row r's generated ids up to (without) its first EOS.
std::vector<int64_t> until_eos(const torch::Tensor& gen, int64_t r, const std::vector<int64_t>& eos) {
  std::vector<int64_t> ids;
  for (int64_t t = 0; t < gen.size(1); ++t) {
    const int64_t id = gen[r][t].item<int64_t>();
    if (std::find(eos.begin(), eos.end(), id) != eos.end()) break;
    ids.push_back(id);
  }
  return ids;
}

// "generation": the batch's prompts decoded, each output matched to its candidates' titles (LLaRA's
// protocol: valid when it names exactly one candidate).
void score_by_generation(train::SbtRecSession& s, data::Split split, const train::SbtRecSession::Cases& cases,
                         std::vector<CaseResult>& out) {
  const auto& rows = cases.rows;
  const auto gen = generate_batch(s, split, cases, s.generation);  // [B, N]
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto ids = until_eos(gen, (int64_t)r, s.generation.eos_token_ids);
    const auto& cs = *cases.candidates[r];
    CaseResult c;
    c.index = rows[r];
    c.output = s.tokenizer->decode(ids, true);
    const auto m = match_generation(c.output, titles_of(s, cs), cs.target_index);
    for (int k : m.named_indices) c.named.push_back(cs.items[(size_t)k]);
    c.valid = m.valid;
    c.hit = m.hit;
    out.push_back(std::move(c));
  }
}

// "constrained": generation that may write only its case's candidate answers (each title's answer ids
// as training appends them, up to the end of turn), through a prefix tree per case. The output names
// the candidate whose answer it completed (valid, ValidRatio 1 by construction), or none when
// generation.max_new_tokens cut it short (invalid); two candidates with the same answer both (invalid).
void score_by_constrained(train::SbtRecSession& s, data::Split split, const train::SbtRecSession::Cases& cases,
                          std::vector<CaseResult>& out) {
  const auto& rows = cases.rows;
  auto finishing = s.generation.eos_token_ids;
  finishing.insert(finishing.end(), s.generation.stop_token_ids.begin(), s.generation.stop_token_ids.end());
  std::vector<llm::TokenTrie> tries;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<std::vector<int64_t>> answers;
    for (int32_t item : cases.candidates[r]->items) answers.push_back(s.builder->encode_answer(s.ds->titles[(size_t)item]));
    tries.emplace_back(answers, finishing);
  }
  auto g = s.generation;
  g.allowed_tokens = [&tries](int64_t row, const std::vector<int64_t>& generated) {
    return tries[(size_t)row].allowed(generated);
  };
  const auto gen = generate_batch(s, split, cases, g);  // [B, N]
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& cs = *cases.candidates[r];
    const auto row = gen[(int64_t)r].contiguous();  // [N]
    std::vector<int64_t> all(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    CaseResult c;
    c.index = rows[r];
    c.output = s.tokenizer->decode(until_eos(gen, (int64_t)r, s.generation.eos_token_ids), true);
    for (size_t k : tries[r].sequences_ending(all)) c.named.push_back(cs.items[k]);
    c.valid = c.named.size() == 1;
    c.hit = c.valid && c.named[0] == cs.items[(size_t)cs.target_index];
    out.push_back(std::move(c));
  }
}

// "likelihood": one case per batch; every candidate's answer scored after the prompt, the top one
// named; with eval.token_reliance the same prompt re-scored with the tokens moved.
void score_by_likelihood(train::SbtRecSession& s, data::Split split, const train::SbtRecSession::Cases& cases,
                         std::vector<CaseResult>& out) {
  const auto& rows = cases.rows;
  const auto& cs = *cases.candidates[0];
  const bool hybrid = s.cfg.prompt.hybrid;
  auto pb = s.batch(split, rows, cases.candidates, cases.templates, hybrid, false, true);  // the prompt once: [1, P]
  auto embeds = s.model->inputs_embeds(pb, s.users(split, rows));                        // [1, P, E]
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
  out.push_back(std::move(r));
}

// The registry, with the built-in evaluators in it from its first use (whatever the order of static
// initialisation across files).
std::map<std::string, Evaluator>& registry() {
  static std::map<std::string, Evaluator> r = {
      {"generation", {[](const train::SbtRecSession& s) { return (int64_t)s.cfg.eval.llm_batch_size; }, score_by_generation,
                      [](MetricsAccumulator& a, const CaseResult& c) { a.add_candidate_case(c.hit, c.valid); }}},
      {"constrained", {[](const train::SbtRecSession& s) { return (int64_t)s.cfg.eval.llm_batch_size; }, score_by_constrained,
                       [](MetricsAccumulator& a, const CaseResult& c) { a.add_candidate_case(c.hit, c.valid); }}},
      {"likelihood", {[](const train::SbtRecSession&) { return (int64_t)1; }, score_by_likelihood,
                      [](MetricsAccumulator& a, const CaseResult& c) { a.add_candidate_rank(c.rank); }}}};
  return r;
}

}  // namespace

bool register_evaluator(const std::string& name, Evaluator e) {
  if (!registry().emplace(name, std::move(e)).second) throw Error("evaluator '" + name + "' is registered twice");
  return true;
}

std::vector<std::string> evaluator_names() {
  std::vector<std::string> names;
  for (const auto& [name, e] : registry()) names.push_back(name);
  return names;
}

const Evaluator& evaluator(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) config::unknown_choice("eval.mode", name, evaluator_names());
  return it->second;
}

// score_c = sum_t log p(a_c,t | prompt, a_c,<t): one prompt forward, its KV cache shared by the C answers.
std::vector<double> score_candidates(train::SbtRecSession& s, const prompt::PromptBatch& pb, const torch::Tensor& embeds,
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

nlohmann::json SbtRecEval::to_json() const {
  auto j = metrics.to_json();
  int64_t hits = 0, valid = 0;
  for (const auto& c : cases) hits += c.hit, valid += c.valid;
  j["hits"] = hits;
  j["valid"] = valid;
  if (valid > 0) j["hr@1_of_valid"] = (double)hits / (double)valid;  // LLaRA's code's test_hr; absent without a valid output
  j["split"] = data::split_name(split);
  j["mode"] = mode;
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

SbtRecEval evaluate_sbtrec(train::SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                           dist::ProcessGroup* group, const EvalScope& scope) {
  const auto& samples = s.ds->split(split);
  check_candidates(samples, candidates, s.ds->num_items, data::split_name(split));
  int64_t n = (int64_t)samples.size();
  const int64_t cap = scope.max_cases > 0 ? scope.max_cases
                      : split == data::Split::kVal && s.cfg.eval.max_val_cases > 0 ? s.cfg.eval.max_val_cases
                                                                                    : s.cfg.eval.max_cases;
  if (cap > 0) n = std::min(n, cap);
  torch::NoGradGuard no_grad;
  const bool was_training = s.model->is_training();
  s.model->eval();
  SbtRecEval out;
  out.split = split;
  out.mode = scope.mode.value_or(s.cfg.eval.mode);
  const Evaluator& ev = evaluator(out.mode);
  const int64_t B = std::max<int64_t>(1, ev.batch_size(s));
  // Batch k goes to rank k mod W.
  const int W = group ? group->size() : 1, R = group ? group->rank() : 0;
  const int64_t batches = (n + B - 1) / B, mine = batches / W + (R < batches % W ? 1 : 0);
  Progress progress(fmt::format("eval {} ({})", data::split_name(split), out.mode), mine, B, s.cfg.train.log_every);
  int64_t hits = 0;  // this rank's hits among its first `counted` cases (the progress line's HR@1)
  size_t counted = 0;
  // The cases in batches of one template and similar prompt length (eval.sort_by_length, batched
  // evaluators: less padding, and a longer start the prompts share for eval.shared_prefix), longest
  // first; each case keeps its own prompt, and the results are put back in case order below.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (B > 1 && s.cfg.eval.sort_by_length) {
    const auto c = s.eval_cases(split, order, candidates);
    std::vector<int64_t> length(n);
    for (int64_t i = 0; i < n; ++i)
      length[(size_t)i] = s.batch(split, {i}, {c.candidates[(size_t)i]}, {c.templates[(size_t)i]}, s.cfg.prompt.hybrid,
                                  false, true).prompt_lengths[0];
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      const size_t ta = c.templates[(size_t)a], tb = c.templates[(size_t)b];
      return ta != tb ? ta < tb : length[(size_t)a] > length[(size_t)b];
    });
  }
  s.prefix_cache.clear();  // prefixes run with this evaluation's weights only
  for (int64_t start = 0, k = 0, done = 0; start < n; start += B, ++k) {
    if (k % W != R) continue;
    const std::vector<int64_t> rows(order.begin() + start, order.begin() + std::min(n, start + B));
    ev.score(s, split, s.eval_cases(split, rows, candidates), out.cases);
    for (; counted < out.cases.size(); ++counted) hits += out.cases[counted].hit;
    progress.update(++done, counted ? (double)hits / (double)counted : 0.0, "hr@1");
  }
  progress.finish();
  s.prefix_cache.clear();
  if (W > 1) {
    const auto parts = group->all_gather_bytes(encode_cases(out.cases), std::string("evaluation of ") + data::split_name(split));
    out.cases.clear();
    for (const auto& p : parts) decode_cases(p, out.cases);
  }
  std::sort(out.cases.begin(), out.cases.end(), [](const CaseResult& a, const CaseResult& b) { return a.index < b.index; });
  MetricsAccumulator acc;  // in case order, whatever rank evaluated a case
  for (const auto& c : out.cases) ev.count(acc, c);
  out.metrics = acc.finalize();
  if (was_training) s.model->train();
  return out;
}

std::map<std::string, torch::Tensor> behaviour_tokens(train::SbtRecSession& s, data::Split split) {
  torch::NoGradGuard no_grad;
  const bool was_training = s.model->is_training();
  s.model->eval();
  const auto device = s.model->item_vectors.device();
  const int64_t N = s.ds->num_items;
  std::vector<torch::Tensor> tokens, titles;
  const auto& table = s.model->llm->model->embed_tokens->weight;  // [V, E]
  for (int64_t b = 0; b < N; b += 256) {
    const auto items = torch::arange(b, std::min(N, b + 256), torch::TensorOptions().dtype(torch::kInt64).device(device));
    tokens.push_back(s.model->item_embeddings(items).to(torch::kFloat32).cpu());  // [b, E]
  }
  for (int64_t i = 0; i < N; ++i) {
    const auto ids = s.tokenizer->encode(s.ds->titles[(size_t)i], /*add_special_tokens=*/false);
    if (ids.empty()) throw EvalError("item " + std::to_string(i) + ": its title has no tokens");
    titles.push_back(table.index_select(0, torch::tensor(ids, torch::kInt64).to(table.device())).to(torch::kFloat32).mean(0).cpu());
  }
  std::map<std::string, torch::Tensor> out = {{"item_tokens", torch::cat(tokens)}, {"title_embeddings", torch::stack(titles)}};
  const auto& users = s.user_vectors[(size_t)data::split_code(split)];
  if (s.user_token && users.defined()) out["user_tokens"] = s.model->user_embeddings(users.to(device)).to(torch::kFloat32).cpu();
  if (was_training) s.model->train();
  return out;
}

nlohmann::json attention_on_slots(train::SbtRecSession& s, data::Split split, const std::vector<data::CandidateSet>& candidates,
                                  int64_t max_cases) {
  if (!s.cfg.prompt.hybrid) throw ConfigError("attention on slots: prompt.hybrid is false, the prompts have no slots");
  const auto& samples = s.ds->split(split);
  check_candidates(samples, candidates, s.ds->num_items, data::split_name(split));
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

void write_predictions(const std::string& path, const train::SbtRecSession& s, const SbtRecEval& e,
                       const std::vector<data::CandidateSet>& candidates, const std::string& source) {
  const std::string mode = e.mode;
  atomic_write(path, [&](std::ostream& os) {
    for (const auto& c : e.cases) {
      nlohmann::json j = case_record(*s.ds, e.split, c.index, candidates[(size_t)c.index], source);
      std::vector<int64_t> named;  // item ids as in the dataset's own files
      for (int32_t item : c.named) named.push_back(s.ds->raw_item_ids[(size_t)item]);
      j["output"] = c.output;
      j["named"] = named;
      j["valid"] = c.valid;
      j["hit"] = c.hit;
      j["mode"] = mode;
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

}  // namespace sbtrec::eval
