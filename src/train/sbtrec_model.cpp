// SBT-Rec's forward pass (see sbtrec_model.h).
#include "sbtrec/train/sbtrec_model.h"

#include "sbtrec/common/error.h"

namespace sbtrec::train {

SbtRecModelImpl::SbtRecModelImpl(llm::LlamaForCausalLM llm_model, torch::Tensor items, quantizer::Hdsd hdsd_module,
                                 int64_t user_dim, const aligner::AlignerOptions& o)
    : llm(register_module("llm", llm_model)) {
  TORCH_CHECK(items.dim() == 2, "SbtRecModel: item vectors must be [N, D], got ", items.sizes());
  item_vectors = register_buffer("item_vectors", items.detach().to(torch::kFloat32).contiguous());
  const int64_t E = llm->config.hidden_size;
  if (hdsd_module) {
    hdsd = register_module("hdsd", hdsd_module);
    if (hdsd->items) TORCH_CHECK(hdsd->items->dim() == items.size(1), "SbtRecModel: item codebooks are ", hdsd->items->dim(),
                                 " wide but the item vectors ", items.size(1));
    if (hdsd->user && user_dim > 0) TORCH_CHECK(hdsd->user->dim() == user_dim, "SbtRecModel: user codebooks are ",
                                                hdsd->user->dim(), " wide but user vectors ", user_dim);
  }
  double norm = 0;
  if (o.output_scale == aligner::OutputScale::kEmbeddings) {
    torch::NoGradGuard ng;
    norm = llm->model->embed_tokens->weight.to(torch::kFloat32).norm(2, 1).mean().item<double>();
  }
  torch::Tensor palette;  // [M, E]: rows spread evenly over the original vocabulary (no RNG draw)
  if (o.palette_size > 0) {
    torch::NoGradGuard ng;
    const auto& W = llm->model->embed_tokens->weight;  // [V, E]; the three slot rows, added last, left out
    const int64_t V = W.size(0) - 3, M = std::min<int64_t>(o.palette_size, V);
    palette = W.index_select(0, torch::linspace(0, (double)(V - 1), M, torch::kFloat64).round().to(torch::kInt64).to(W.device()))
                  .to(torch::kFloat32);
  }
  item_aligner = register_module("item_aligner", aligner::RamAligner(items.size(1), E, o, norm, palette));
  if (user_dim > 0) {
    if (o.shared && user_dim != items.size(1))
      throw ConfigError("aligner.shared: user vectors are " + std::to_string(user_dim) + " wide but item vectors " +
                        std::to_string(items.size(1)) + "; one aligner needs one width (set aligner.shared: false)");
    if (!o.shared) user_aligner = register_module("user_aligner", aligner::RamAligner(user_dim, E, o, norm, palette));
  }
  user_dim_ = user_dim;
  user_as_item_ = o.user_as_item;
  if (user_as_item_ && user_dim > 0 && user_dim != items.size(1))
    throw ConfigError("aligner.user_as_item: user vectors are " + std::to_string(user_dim) + " wide but item rows " +
                      std::to_string(items.size(1)) + "; the nearest item needs one space (quantizer.item_rows: output)");
}

void SbtRecModelImpl::set_item_permutation(torch::Tensor permutation) {
  TORCH_CHECK(!permutation.defined() || (permutation.dim() == 1 && permutation.size(0) == item_vectors.size(0)),
              "SbtRecModel: the item permutation must be [N]");
  permutation_ = permutation.defined() ? permutation.to(torch::kInt64) : permutation;
}

namespace {
// Adds HDSD's auxiliary loss of one forward to the running sum (left as is when not asked for).
void add_quantizer_loss(torch::Tensor* sum, const quantizer::QuantizerOutput& q) {
  if (!sum || !q.loss.defined()) return;
  *sum = sum->defined() ? *sum + q.loss : q.loss;
}
}  // namespace

torch::Tensor SbtRecModelImpl::item_embeddings(const torch::Tensor& items, torch::Tensor* quantizer_loss) {
  auto ids = permutation_.defined() ? permutation_.index_select(0, items) : items;  // [S]
  auto x = item_vectors.index_select(0, ids);                                      // [S, D]
  // HDSD + MBSR: codes from the current codebooks, e_rq with gradient to the chosen rows only.
  auto e = x;                                         // [S, D]
  if (hdsd && hdsd->items) {
    auto q = hdsd->items->forward(x);
    add_quantizer_loss(quantizer_loss, q);
    e = q.e_rq;  // [S, D]
    if (hdsd->items->has_index()) {
      // quantizer.collisions: index. Each item's rank on its tuple among all items under the current
      // codebooks (a tuple may gain or lose items as SBS-AO moves them), its row of the extra codebook added.
      auto ranks = quantizer::collision_ranks(hdsd->items->encode(item_vectors));  // [N]
      e = e + hdsd->items->extra_rows(ranks.to(ids.device()).index_select(0, ids));  // [S, D]
    }
  }
  return item_aligner->forward(e, llm->model->embed_tokens->weight.scalar_type());  // [S, E]
}

torch::Tensor SbtRecModelImpl::user_embeddings(const torch::Tensor& user_vectors, torch::Tensor* quantizer_loss) {
  if (user_dim_ == 0) throw ConfigError("SbtRecModel: the prompts carry user tokens but the model was built without one");
  auto x = user_vectors.to(torch::kFloat32);                       // [S, Z]
  auto e = x;                                 // [S, Z]
  if (hdsd && hdsd->user) {
    auto q = hdsd->user->forward(x);
    add_quantizer_loss(quantizer_loss, q);
    e = q.e_rq;  // [S, Z]
  }
  auto& a = user_aligner ? user_aligner : item_aligner;  // aligner.shared: the items' aligner
  return a->forward(e, llm->model->embed_tokens->weight.scalar_type());  // [S, E]
}

torch::Tensor SbtRecModelImpl::inputs_embeds(const prompt::PromptBatch& b, const torch::Tensor& user_vectors,
                                             torch::Tensor* quantizer_loss) {
  const auto device = llm->model->embed_tokens->weight.device();
  auto embeds = llm->model->embed_tokens(b.input_ids.to(device));  // [B, T, E]
  if (b.slot_kind.numel() == 0) return embeds;
  const auto is_user = b.slot_kind == (int64_t)prompt::SlotKind::kUser;  // [S]
  auto item_at = torch::nonzero(is_user.logical_not()).squeeze(1);        // [S_i]
  auto user_at = torch::nonzero(is_user).squeeze(1);                      // [S_u]
  if (item_at.numel()) {
    auto v = item_embeddings(b.slot_item.index_select(0, item_at).to(device), quantizer_loss);  // [S_i, E]
    embeds = embeds.index_put({b.slot_batch.index_select(0, item_at).to(device), b.slot_position.index_select(0, item_at).to(device)}, v);
  }
  if (user_at.numel()) {
    if (!user_vectors.defined())
      throw ConfigError("SbtRecModel: the batch has user slots but no user vectors were given");
    auto rows = b.slot_batch.index_select(0, user_at);                             // [S_u]
    auto named = b.slot_item.index_select(0, user_at);                             // [S_u]: -1, or the oracle's item
    auto u = user_vectors.index_select(0, rows.to(user_vectors.device())).to(device).to(torch::kFloat32);  // [S_u, Z]
    if (named.ge(0).all().item<bool>()) {
      // prompt.oracle_user_token: the target's own token
    } else if (user_as_item_) {
      auto unit = [](const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); };
      // Against the rows the item tokens are made of (the shuffled control's permuted rows included).
      auto rows_of_items = permutation_.defined() ? item_vectors.index_select(0, permutation_) : item_vectors;  // [N, D]
      named = torch::matmul(unit(u), unit(rows_of_items).t()).argmax(1);  // [S_u]: the nearest item in cosine
    }
    auto v = named.ge(0).all().item<bool>() ? item_embeddings(named.to(device), quantizer_loss)
                                            : user_embeddings(u, quantizer_loss);  // [S_u, E]
    embeds = embeds.index_put({rows.to(device), b.slot_position.index_select(0, user_at).to(device)}, v);
  }
  return embeds;  // [B, T, E]
}

torch::Tensor SbtRecModelImpl::loss(const prompt::PromptBatch& b, const torch::Tensor& user_vectors) {
  const auto device = llm->model->embed_tokens->weight.device();
  llm::ForwardInputs in;
  torch::Tensor quantizer_loss;                                        // [] or undefined
  in.inputs_embeds = inputs_embeds(b, user_vectors, &quantizer_loss);  // [B, T, E]
  in.attention_mask = b.attention_mask.to(device);                     // [B, T]
  auto ce = llm->loss(in, b.labels.to(device));                        // []
  return quantizer_loss.defined() ? ce + quantizer_loss.to(ce.device(), ce.scalar_type()) : ce;
}

}  // namespace sbtrec::train
