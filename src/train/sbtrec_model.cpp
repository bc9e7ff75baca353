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
  item_aligner = register_module("item_aligner", aligner::RamAligner(items.size(1), E, o));
  if (user_dim > 0) user_aligner = register_module("user_aligner", aligner::RamAligner(user_dim, E, o));
}

void SbtRecModelImpl::set_item_permutation(torch::Tensor permutation) {
  TORCH_CHECK(!permutation.defined() || (permutation.dim() == 1 && permutation.size(0) == item_vectors.size(0)),
              "SbtRecModel: the item permutation must be [N]");
  permutation_ = permutation.defined() ? permutation.to(torch::kInt64) : permutation;
}

torch::Tensor SbtRecModelImpl::item_embeddings(const torch::Tensor& items) {
  auto ids = permutation_.defined() ? permutation_.index_select(0, items) : items;  // [S]
  auto x = item_vectors.index_select(0, ids);                                      // [S, D]
  // HDSD + MBSR: codes from the current codebooks, e_rq with gradient to the chosen rows only.
  auto e = hdsd && hdsd->items ? hdsd->items->forward(x).e_rq : x;  // [S, D]
  return item_aligner->forward(e, llm->model->embed_tokens->weight.scalar_type());  // [S, E]
}

torch::Tensor SbtRecModelImpl::user_embeddings(const torch::Tensor& user_vectors) {
  if (!user_aligner) throw ConfigError("SbtRecModel: the prompts carry user tokens but the model was built without one");
  auto x = user_vectors.to(torch::kFloat32);                       // [S, Z]
  auto e = hdsd && hdsd->user ? hdsd->user->forward(x).e_rq : x;  // [S, Z]
  return user_aligner->forward(e, llm->model->embed_tokens->weight.scalar_type());  // [S, E]
}

torch::Tensor SbtRecModelImpl::inputs_embeds(const prompt::PromptBatch& b, const torch::Tensor& user_vectors) {
  const auto device = llm->model->embed_tokens->weight.device();
  auto embeds = llm->model->embed_tokens(b.input_ids.to(device));  // [B, T, E]
  if (b.slot_kind.numel() == 0) return embeds;
  const auto is_user = b.slot_kind == (int64_t)prompt::SlotKind::kUser;  // [S]
  auto item_at = torch::nonzero(is_user.logical_not()).squeeze(1);        // [S_i]
  auto user_at = torch::nonzero(is_user).squeeze(1);                      // [S_u]
  if (item_at.numel()) {
    auto v = item_embeddings(b.slot_item.index_select(0, item_at).to(device));  // [S_i, E]
    embeds = embeds.index_put({b.slot_batch.index_select(0, item_at).to(device), b.slot_position.index_select(0, item_at).to(device)}, v);
  }
  if (user_at.numel()) {
    if (!user_vectors.defined())
      throw ConfigError("SbtRecModel: the batch has user slots but no user vectors were given");
    auto rows = b.slot_batch.index_select(0, user_at);                             // [S_u]
    auto v = user_embeddings(user_vectors.index_select(0, rows.to(user_vectors.device())).to(device));  // [S_u, E]
    embeds = embeds.index_put({rows.to(device), b.slot_position.index_select(0, user_at).to(device)}, v);
  }
  return embeds;  // [B, T, E]
}

torch::Tensor SbtRecModelImpl::loss(const prompt::PromptBatch& b, const torch::Tensor& user_vectors) {
  const auto device = llm->model->embed_tokens->weight.device();
  llm::ForwardInputs in;
  in.inputs_embeds = inputs_embeds(b, user_vectors);  // [B, T, E]
  in.attention_mask = b.attention_mask.to(device);     // [B, T]
  return llm->loss(in, b.labels.to(device));           // scalar
}

}  // namespace sbtrec::train
