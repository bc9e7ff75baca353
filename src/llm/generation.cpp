// Greedy and beam-search decoding (see generation.h). Legend: B batch, P prompt, N new tokens,
// K beams, V vocabulary, C = candidates kept per step (2K, or (1 + #finishing tokens) K).
#include "sbtrec/llm/generation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "sbtrec/common/error.h"

namespace sbtrec::llm {
namespace {

constexpr float kNeg = -1.0e9f;

struct Prompt {
  torch::Tensor ids, embeds;  // one of them
  // [B, Q + P] with a prefix, else [B, P]; undefined when no row is padded (the model's fast paths)
  torch::Tensor mask;
  const PromptPrefix* prefix = nullptr;  // the rows' shared first Q positions, already run
  int64_t batch() const { return (ids.defined() ? ids : embeds).size(0); }
  int64_t length() const { return (ids.defined() ? ids : embeds).size(1); }
  int64_t prefix_length() const { return prefix ? prefix->length : 0; }
  // The cache the prompt's forward starts from: empty, or the prefix's for every row.
  KVCache start_cache(int64_t layers, int64_t new_tokens) const {
    const int64_t capacity = prefix_length() + length() + new_tokens;
    return prefix ? prefix->cache.expanded(batch(), capacity) : KVCache(layers, capacity);
  }
};

torch::Tensor finishing_tokens(const GenerationOptions& o, const torch::Device& dev) {
  std::vector<int64_t> all = o.eos_token_ids;
  all.insert(all.end(), o.stop_token_ids.begin(), o.stop_token_ids.end());
  return torch::tensor(all, torch::TensorOptions().dtype(torch::kInt64)).to(dev);
}

int64_t filler(const GenerationOptions& o) {
  if (o.pad_token_id >= 0) return o.pad_token_id;
  if (!o.eos_token_ids.empty()) return o.eos_token_ids[0];
  return 0;
}

// Sets the scores of suppressed tokens to -inf in place: scores [B, V].
void suppress(torch::Tensor& scores, const torch::Tensor& ids) {
  if (ids.numel()) scores.index_fill_(-1, ids, -std::numeric_limits<float>::infinity());
}

// Constrained decoding: -inf on every token that `rows` (each the batch row of a line of `scores`) may
// not write after `generated` (each line's tokens so far), in place: scores [R, V].
void constrain(torch::Tensor& scores, const GenerationOptions& o, const std::vector<int64_t>& rows,
               const std::vector<std::vector<int64_t>>& generated) {
  if (!o.allowed_tokens) return;
  const int64_t R = scores.size(0), V = scores.size(1);
  auto mask = torch::full({R, V}, -std::numeric_limits<float>::infinity(), torch::kFloat32);  // [R, V]
  auto* m = mask.data_ptr<float>();
  for (int64_t r = 0; r < R; ++r) {
    const auto ok = o.allowed_tokens(rows[(size_t)r], generated[(size_t)r]);
    if (ok.empty())
      throw Error("constrained decoding: no token allowed for row " + std::to_string(rows[(size_t)r]) + " after " +
                  std::to_string(generated[(size_t)r].size()) + " generated tokens");
    for (int64_t id : ok) {
      if (id < 0 || id >= V)
        throw Error("constrained decoding: allowed token " + std::to_string(id) + " is outside the vocabulary [0, " +
                    std::to_string(V) + ")");
      m[r * V + id] = 0.0f;
    }
  }
  scores.add_(mask.to(scores.device(), scores.scalar_type()));
}

// Next-token logits [B, V] for a one-token step of every row.
torch::Tensor step(LlamaForCausalLMImpl& model, const torch::Tensor& tokens, torch::Tensor& mask, KVCache& cache) {
  if (mask.defined()) mask = torch::cat({mask, torch::ones({mask.size(0), 1}, mask.options())}, 1);  // [B, S + 1]
  ForwardInputs in;
  in.input_ids = tokens.unsqueeze(1);  // [B, 1]
  in.attention_mask = mask;
  in.cache = &cache;
  in.logits_to_keep = 1;
  return model.forward(in).select(1, 0);  // [B, V]
}

torch::Tensor prefill(LlamaForCausalLMImpl& model, const Prompt& p, KVCache& cache) {
  ForwardInputs in;
  in.input_ids = p.ids;
  in.inputs_embeds = p.embeds;
  in.attention_mask = p.mask;
  in.cache = &cache;
  in.logits_to_keep = 1;
  return model.forward(in).select(1, 0);  // [B, V]
}

torch::Tensor greedy(LlamaForCausalLMImpl& model, Prompt p, const GenerationOptions& o, const torch::Tensor& banned) {
  const int64_t B = p.batch();
  KVCache cache = p.start_cache(model.config.num_hidden_layers, o.max_new_tokens);
  auto logits = prefill(model, p, cache);                                     // [B, V]
  const auto stop = finishing_tokens(o, logits.device());
  auto unfinished = torch::ones({B}, torch::TensorOptions().dtype(torch::kBool).device(logits.device()));
  std::vector<torch::Tensor> out;
  std::vector<int64_t> rows(B);
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<std::vector<int64_t>> generated((size_t)B);  // constrained decoding: each row's tokens so far
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    suppress(logits, banned);
    constrain(logits, o, rows, generated);
    auto next = logits.argmax(-1);                                            // [B]
    if (stop.numel()) next = torch::where(unfinished, next, torch::full_like(next, filler(o)));
    out.push_back(next);
    if (o.allowed_tokens) {
      auto n = next.cpu();
      for (int64_t b = 0; b < B; ++b) generated[(size_t)b].push_back(n[b].item<int64_t>());
    }
    if (stop.numel()) unfinished = unfinished.logical_and(torch::isin(next, stop).logical_not());
    if (i + 1 == o.max_new_tokens || (stop.numel() && !unfinished.any().item<bool>())) break;
    logits = step(model, next, p.mask, cache);
  }
  return torch::stack(out, 1);  // [B, N]
}

// Row-wise gather over the beam dimension: t [B, X, ...], idx [B, Y] -> [B, Y, ...].
torch::Tensor gather_beams(const torch::Tensor& t, const torch::Tensor& idx) {
  auto shape = idx.sizes().vec();
  auto expanded = idx;
  for (int64_t d = 2; d < t.dim(); ++d) {
    expanded = expanded.unsqueeze(-1);
    shape.push_back(t.size(d));
  }
  return t.gather(1, expanded.expand(shape));
}

torch::Tensor beam_search(LlamaForCausalLMImpl& model, Prompt p, const GenerationOptions& o, const torch::Tensor& banned) {
  const int64_t B = p.batch(), K = o.num_beams, N = o.max_new_tokens;
  KVCache cache = p.start_cache(model.config.num_hidden_layers, N);
  auto logits = prefill(model, p, cache);  // [B, V]
  const auto dev = logits.device();
  const int64_t V = logits.size(-1);
  // Every beam of a row starts from the same prompt: replicate cache and mask K times.
  auto rows = torch::arange(B, torch::TensorOptions().dtype(torch::kInt64).device(dev)).repeat_interleave(K);  // [B*K]
  cache.reorder(rows);
  if (p.mask.defined()) p.mask = p.mask.index_select(0, rows);
  logits = logits.index_select(0, rows);  // [B*K, V]
  const auto stop = finishing_tokens(o, dev);
  const int64_t C = std::max<int64_t>(2, 1 + (int64_t)o.eos_token_ids.size() + (int64_t)o.stop_token_ids.size()) * K;
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(dev);
  auto running = torch::full({B, K, N}, filler(o), i64);           // running sequences (generated part)
  auto running_scores = torch::zeros({B, K}, f32);
  running_scores.narrow(1, 1, K - 1).fill_(kNeg);                 // only beam 0 is live at first
  auto finished = running.clone();                                // best finished hypotheses
  auto finished_scores = torch::full({B, K}, kNeg, f32);
  auto finished_len = torch::zeros({B, K}, i64);
  auto running_len = torch::zeros({B, K}, i64);
  auto is_finished = torch::zeros({B, K}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto may_improve = torch::ones({B, 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto top_k_mask = torch::cat({torch::ones({K}, i64), torch::zeros({C - K}, i64)}).to(torch::kBool);  // [C]
  std::vector<int64_t> beam_rows((size_t)(B * K));
  for (int64_t r = 0; r < B * K; ++r) beam_rows[(size_t)r] = r / K;
  for (int64_t t = 0; t < N; ++t) {
    auto log_probs = torch::log_softmax(logits, -1);                                                  // [B*K, V]
    suppress(log_probs, banned);  // after the softmax, as transformers' processors: the others keep their mass
    if (o.allowed_tokens) {
      // Each beam's generated tokens so far (the running sequences' first t).
      auto seq = running.narrow(2, 0, t).reshape({B * K, t}).cpu().contiguous();  // [B*K, t]
      std::vector<std::vector<int64_t>> generated((size_t)(B * K));
      for (int64_t r = 0; r < B * K; ++r)
        generated[(size_t)r].assign(seq.data_ptr<int64_t>() + r * t, seq.data_ptr<int64_t>() + (r + 1) * t);
      constrain(log_probs, o, beam_rows, generated);
    }
    log_probs = log_probs.view({B, K, V}) + running_scores.unsqueeze(-1);                              // [B, K, V]
    auto [top_scores, top_index] = log_probs.view({B, K * V}).topk(C);                                // [B, C]
    auto from_beam = top_index.div(V, "floor");                                                        // [B, C]
    auto token = top_index.remainder(V);                                                               // [B, C]
    auto cand = gather_beams(running, from_beam).clone();                                              // [B, C, N]
    cand.select(2, t).copy_(token);
    // A candidate stops when it ends in a finishing token or reaches the length limit.
    auto hits = stop.numel() ? torch::isin(token, stop) : torch::zeros_like(token, torch::kBool);     // [B, C]
    if (t + 1 >= N) hits.fill_(true);
    // Keep the K best unfinished candidates running.
    auto live_scores = top_scores + hits.to(torch::kFloat32) * kNeg;
    auto keep = std::get<1>(live_scores.topk(K));                                                      // [B, K]
    running = gather_beams(cand, keep);
    running_scores = gather_beams(live_scores, keep);
    auto beam_src = gather_beams(from_beam, keep);                                                     // [B, K]
    // Candidates among the top K that just finished compete with earlier finished hypotheses,
    // scored by sum log-prob / generated_length ** length_penalty.
    auto just_finished = hits.logical_and(top_k_mask.to(dev).unsqueeze(0));                           // [B, C]
    auto norm_scores = top_scores / std::pow((double)(t + 1), o.length_penalty);
    auto full = is_finished.all(1, true).logical_and(torch::scalar_tensor(o.early_stopping == EarlyStopping::kTrue, torch::kBool).to(dev));
    norm_scores = norm_scores + full.to(torch::kFloat32) * kNeg + may_improve.logical_not().to(torch::kFloat32) * kNeg +
                  just_finished.logical_not().to(torch::kFloat32) * kNeg;
    auto merged_seq = torch::cat({finished, cand}, 1);                                                 // [B, K + C, N]
    auto merged_scores = torch::cat({finished_scores, norm_scores}, 1);
    auto merged_len = torch::cat({finished_len, torch::full({B, C}, t + 1, i64)}, 1);
    auto merged_done = torch::cat({is_finished, just_finished}, 1);
    auto best = std::get<1>(merged_scores.topk(K));                                                   // [B, K]
    finished = gather_beams(merged_seq, best);
    finished_scores = gather_beams(merged_scores, best);
    finished_len = gather_beams(merged_len, best);
    is_finished = gather_beams(merged_done, best);
    // Early-stop heuristic: can the best running beam still beat the worst finished one?
    const double best_len = (o.early_stopping == EarlyStopping::kNever && o.length_penalty > 0.0) ? (double)N : (double)(t + 1);
    auto best_possible = running_scores.narrow(1, 0, 1) / std::pow(best_len, o.length_penalty);      // [B, 1]
    auto worst_finished = torch::where(is_finished, std::get<0>(finished_scores.min(1, true)).expand({B, K}),
                                       torch::full({B, K}, kNeg, f32));
    may_improve = may_improve.logical_and(best_possible.gt(worst_finished).any(1, true));
    const bool improvement_possible = may_improve.any().item<bool>();
    const bool open_beam = !(is_finished.all().item<bool>() && o.early_stopping == EarlyStopping::kTrue);
    const bool can_continue = !hits.all().item<bool>();
    if (!(improvement_possible && open_beam && can_continue)) break;
    // Reorder the cache to the surviving beams and feed their last tokens.
    auto flat_src = (beam_src + torch::arange(B, i64).unsqueeze(1) * K).view({-1});                   // [B*K]
    cache.reorder(flat_src);
    if (p.mask.defined()) p.mask = p.mask.index_select(0, flat_src);
    logits = step(model, running.select(2, t).reshape({-1}), p.mask, cache);                            // [B*K, V]
  }
  // Best finished hypothesis per row, trimmed to the longest generated length.
  auto best_seq = finished.select(1, 0);                          // [B, N]
  const int64_t len = finished_len.select(1, 0).max().item<int64_t>();
  return best_seq.narrow(1, 0, std::max<int64_t>(len, 1));        // [B, N']
}

torch::Tensor run(LlamaForCausalLMImpl& model, Prompt p, const GenerationOptions& o) {
  if (o.max_new_tokens < 1) throw ConfigError("max_new_tokens must be >= 1");
  if (o.num_beams < 1) throw ConfigError("num_beams must be >= 1");
  const int64_t V = model.config.vocab_size;
  for (int64_t id : o.suppress_token_ids)
    if (id < 0 || id >= V)
      throw ConfigError("generation suppress_token_ids: id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                        std::to_string(V) + ")");
  const auto& ref = p.ids.defined() ? p.ids : p.embeds;
  if (p.mask.defined()) {
    if (p.mask.dim() != 2 || p.mask.size(0) != ref.size(0) || p.mask.size(1) != ref.size(1))
      throw ConfigError("generate: attention_mask must be [B, P] = [" + std::to_string(ref.size(0)) + ", " +
                        std::to_string(ref.size(1)) + "] like the prompt, got " + c10::str(p.mask.sizes()));
  }
  if (p.prefix) {  // the prefix's positions are real for every row
    const auto ones = torch::ones({ref.size(0), p.prefix->length}, torch::TensorOptions().dtype(torch::kInt64));
    p.mask = torch::cat({ones, p.mask.defined() ? p.mask.to(torch::kInt64).cpu() : torch::ones({ref.size(0), ref.size(1)}, ones.options())}, 1);
  }
  if (p.mask.defined()) {
    // Checked once per call, not per step: without padding no mask is passed on, so every forward
    // takes the unmasked kernels and none reads a mask back from the device.
    if (p.mask.eq(0).any().item<bool>()) p.mask = p.mask.to(torch::kInt64).to(ref.device());
    else p.mask = torch::Tensor();
  }
  const auto banned = torch::tensor(o.suppress_token_ids, torch::TensorOptions().dtype(torch::kInt64)).to(ref.device());
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto out = o.num_beams == 1 ? greedy(model, p, o, banned) : beam_search(model, p, o, banned);
  if (was_training) model.train();
  return out;
}

}  // namespace

torch::Tensor generate(LlamaForCausalLMImpl& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const GenerationOptions& options) {
  auto generated = run(model, Prompt{input_ids, {}, attention_mask}, options);
  return torch::cat({input_ids, generated.to(input_ids.device())}, 1);  // [B, P + N]
}

torch::Tensor generate_from_embeds(LlamaForCausalLMImpl& model, const torch::Tensor& inputs_embeds,
                                   const torch::Tensor& attention_mask, const GenerationOptions& options,
                                   const PromptPrefix* prefix) {
  return run(model, Prompt{{}, inputs_embeds, attention_mask, prefix}, options);  // [B, N]
}

PromptPrefix prefill_prefix(LlamaForCausalLMImpl& model, const torch::Tensor& prefix_embeds) {
  TORCH_CHECK(prefix_embeds.dim() == 3 && prefix_embeds.size(0) == 1, "prefill_prefix: embeddings must be [1, Q, D], got ",
              prefix_embeds.sizes());
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  PromptPrefix p{KVCache(model.config.num_hidden_layers, prefix_embeds.size(1)), prefix_embeds.size(1)};
  ForwardInputs in;
  in.inputs_embeds = prefix_embeds;
  in.cache = &p.cache;
  in.logits_to_keep = 1;
  model.forward(in);
  if (was_training) model.train();
  return p;
}

TokenTrie::TokenTrie(const std::vector<std::vector<int64_t>>& sequences, const std::vector<int64_t>& finishing)
    : finishing_(finishing) {
  if (finishing_.empty()) throw ConfigError("TokenTrie: no finishing token (EOS) to end the sequences with");
  std::sort(finishing_.begin(), finishing_.end());
  finishing_.erase(std::unique(finishing_.begin(), finishing_.end()), finishing_.end());
  nodes_.emplace_back();
  for (const auto& seq : sequences) {
    std::vector<int64_t> cut;
    for (int64_t id : seq) {
      cut.push_back(id);
      if (std::binary_search(finishing_.begin(), finishing_.end(), id)) break;
    }
    if (cut.empty() || !std::binary_search(finishing_.begin(), finishing_.end(), cut.back())) cut.push_back(finishing[0]);
    size_t at = 0;
    for (int64_t id : cut) {
      auto it = nodes_[at].next.find(id);
      if (it == nodes_[at].next.end()) {
        nodes_.emplace_back();
        it = nodes_[at].next.emplace(id, nodes_.size() - 1).first;
      }
      at = it->second;
    }
    nodes_[at].ends.push_back(sequences_.size());
    sequences_.push_back(std::move(cut));
  }
}

const TokenTrie::Node* TokenTrie::walk(const std::vector<int64_t>& prefix) const {
  size_t at = 0;
  for (int64_t id : prefix) {
    auto it = nodes_[at].next.find(id);
    if (it == nodes_[at].next.end()) return nullptr;
    at = it->second;
  }
  return &nodes_[at];
}

std::vector<int64_t> TokenTrie::allowed(const std::vector<int64_t>& prefix) const {
  const Node* n = walk(prefix);
  if (!n || n->next.empty()) return finishing_;
  std::vector<int64_t> out;
  for (const auto& [id, child] : n->next) out.push_back(id);
  return out;
}

std::vector<size_t> TokenTrie::sequences_ending(const std::vector<int64_t>& generated) const {
  std::vector<int64_t> cut;
  for (int64_t id : generated) {
    cut.push_back(id);
    if (std::binary_search(finishing_.begin(), finishing_.end(), id)) break;
  }
  const Node* n = walk(cut);
  return n ? n->ends : std::vector<size_t>{};
}

}  // namespace sbtrec::llm
