// HDSD over a frozen encoder (see hdsd.h): behaviour vectors, per-kind quantizers, fitting, files.
// Legend: N items, S samples, L levels, K codes, D item-embedding width, Z representation width.
#include "sbtrec/quantizer/hdsd.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/data/batch.h"
#include "sbtrec/quantizer/genre_purity.h"

namespace sbtrec::quantizer {
namespace {

constexpr const char* kFormat = "sbtrec-codebooks";
constexpr const char* kVersion = "1";
constexpr const char* kItemKey = "codebooks";
constexpr const char* kUserKey = "user_codebooks";
constexpr const char* kIndexKey = "index_codebook";  // quantizer.collisions: index (items)

// The user kind's k-means++ stream is keyed apart from the items' ("user" in ASCII), so the two kinds
// never share draws though one seed is configured.
constexpr uint64_t kUserStream = 0x75736572ull;

nlohmann::json fit_kind(ResidualQuantizerImpl& q, const torch::Tensor& x, uint64_t stream_key, const char* kind) {
  const auto in = input_stats(x);
  spdlog::info("quantizer {}: {} vectors of width {}, mean norm {:.4f} (std {:.4f}), coordinate std {:.4f}", kind,
               in.vectors, in.dim, in.mean_norm, in.std_norm, in.mean_coordinate_std);
  try {
    q.init_kmeans_pp(x, stream_key);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("quantizer ") + kind + ": " + e.what());
  }
  const auto st = q.stats(x);
  spdlog::info("quantizer {}: {} levels x {} codes, relative error {:.4f}, {} of {} full tuples collide", kind, q.levels(),
               q.codes(), st.relative_error, st.collisions, st.vectors);
  return {{"input", in.to_json()}, {"quantizer", st.to_json()}};
}

}  // namespace

torch::Tensor item_vectors(const encoder::EncoderImpl& encoder, ItemRows rows) {
  torch::NoGradGuard no_grad;
  if (rows == ItemRows::kOutput) return encoder.scoring_rows().detach().clone();  // [N, Z]
  return encoder.item_embedding_table().detach().slice(0, 0, encoder.num_items()).clone();  // [N, D]
}

torch::Tensor user_vectors(encoder::EncoderImpl& encoder, const std::vector<data::Sample>& samples, int max_len,
                           int batch_size) {
  torch::NoGradGuard no_grad;
  const bool was_training = encoder.is_training();
  encoder.eval();
  const auto all = data::to_tensors(samples, encoder.num_items(), max_len);
  const int64_t S = (int64_t)samples.size();
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < S; b += batch_size) {
    const int64_t e = std::min<int64_t>(S, b + batch_size);
    parts.push_back(encoder.sequence_representation(all.seq.slice(0, b, e), all.lengths.slice(0, b, e)));  // [B, Z]
  }
  if (was_training) encoder.train();
  if (parts.empty()) return torch::empty({0, encoder.hidden_size()});
  return torch::cat(parts);  // [S, Z]
}

nlohmann::json InputStats::to_json() const {
  return {{"vectors", vectors}, {"dim", dim}, {"mean_norm", mean_norm}, {"std_norm", std_norm},
          {"mean_coordinate_std", mean_coordinate_std}};
}

InputStats input_stats(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  InputStats s;
  s.vectors = x.size(0);
  s.dim = x.size(1);
  if (s.vectors == 0) return s;
  auto xd = x.detach().to(torch::kFloat64);  // [N, D]
  auto norms = xd.norm(2, 1);                // [N]
  s.mean_norm = norms.mean().item<double>();
  s.std_norm = s.vectors > 1 ? norms.std().item<double>() : 0.0;
  s.mean_coordinate_std = s.vectors > 1 ? xd.std(0).mean().item<double>() : 0.0;
  return s;
}

HdsdImpl::HdsdImpl(const QuantizerOptions& options, int64_t item_dim, int64_t user_dim) {
  if (quantizes_items(options.inputs)) items = register_module("items", ResidualQuantizer(options, item_dim));
  auto user_options = options;
  user_options.collisions = Collisions::kKeep;  // one token per history: nothing to tell apart
  if (quantizes_user(options.inputs)) user = register_module("user", ResidualQuantizer(user_options, user_dim));
}

uint64_t kmeans_seed(const QuantizerOptions& options, uint64_t run_seed) {
  return options.seed < 0 ? run_seed : (uint64_t)options.seed;
}

HdsdFit fit_hdsd(const QuantizerOptions& options, uint64_t seed, encoder::EncoderImpl& encoder, const data::Dataset& ds,
                 int max_len, int batch_size, const torch::Tensor& train_users) {
  if (encoder.num_items() != ds.num_items)
    throw ConfigError("the encoder has " + std::to_string(encoder.num_items()) + " items but dataset " + ds.name + " has " +
                      std::to_string(ds.num_items));
  torch::Tensor items, users;
  if (quantizes_items(options.inputs)) items = item_vectors(encoder, options.item_rows);                             // [N, D]
  if (quantizes_user(options.inputs))
    users = train_users.defined() ? train_users : user_vectors(encoder, ds.train, max_len, batch_size);  // [S, Z]
  HdsdFit fit;
  torch::Tensor purity_codes;  // the L levels' codes of the items (without the extra code)
  fit.hdsd = Hdsd(options, items.defined() ? items.size(1) : 1, users.defined() ? users.size(1) : 1);
  fit.stats = {{"dataset", ds.name},
               {"seed", seed},
               {"item_rows", config::choice_name(item_rows_choices(), options.item_rows)},
               {"normalize", options.normalize},
               {"collisions", config::choice_name(collisions_choices(), options.collisions)}};
  if (fit.hdsd->items) {
    auto& q = *fit.hdsd->items;
    auto j = fit_kind(q, items, seed, "items");
    fit.item_codes = q.encode(items);  // [N, L]
    nlohmann::json groups = nlohmann::json::array();
    int64_t sharing = 0;
    auto codes = fit.item_codes.accessor<int64_t, 2>();
    for (const auto& g : shared_tuples(fit.item_codes)) {
      nlohmann::json tuple = nlohmann::json::array(), titles = nlohmann::json::array();
      for (int64_t l = 0; l < q.levels(); ++l) tuple.push_back(codes[g.front()][l]);
      for (int64_t i : g) titles.push_back(ds.titles[(size_t)i]);
      groups.push_back({{"codes", tuple}, {"items", g}, {"titles", titles}});
      sharing += (int64_t)g.size();
    }
    j["items_sharing_a_tuple"] = sharing;
    j["shared_tuples"] = groups;
    if (q.has_index()) {
      // TIGER's extra code: each item's rank on its tuple, as the L + 1-th column of the codes.
      auto ranks = collision_ranks(fit.item_codes);                                                    // [N]
      auto residual = q.prepared(items).to(q.codebooks.device()) - q.decode(fit.item_codes).detach();  // [N, D]
      q.make_index_codebook(ranks, residual, stream_key(seed, Purpose::kIndexCodebook, 0));
      purity_codes = fit.item_codes;
      fit.item_codes = torch::cat({fit.item_codes, ranks.unsqueeze(1).to(fit.item_codes.device())}, 1);  // [N, L + 1]
      const int64_t distinct = std::get<0>(torch::unique_dim(fit.item_codes, 0)).size(0);
      j["index"] = {{"codes", q.index_codebook.size(0)},
                    {"collisions", fit.item_codes.size(0) - distinct},
                    {"rms", residual.pow(2).mean().sqrt().item<double>()}};
      spdlog::info("quantizer items: collisions index: an extra code of {} rows; {} collisions left", q.index_codebook.size(0),
                   fit.item_codes.size(0) - distinct);
    }
    fit.stats["items"] = j;
  }
  if (fit.hdsd->user) {
    auto& q = *fit.hdsd->user;
    fit.stats["user"] = fit_kind(q, users, splitmix64(seed ^ kUserStream), "user");
    fit.stats["user"]["samples"] = "train";
    fit.train_user_codes = q.encode(users);  // [S, L]
  }
  const auto purity =
      genre_purity_stats(ds, purity_codes.defined() ? purity_codes : fit.item_codes, fit.train_user_codes, seed);
  if (!purity.is_null()) fit.stats["genre_purity"] = purity;
  return fit;
}

void save_hdsd(const std::string& dir, const HdsdFit& fit, const std::string& config_yaml) {
  std::map<std::string, torch::Tensor> books, codes;
  if (fit.hdsd->items) {
    books[kItemKey] = fit.hdsd->items->codebooks.detach().cpu();
    if (fit.hdsd->items->has_index()) books[kIndexKey] = fit.hdsd->items->index_codebook.detach().cpu();
    codes["item_codes"] = fit.item_codes.cpu();
  }
  if (fit.hdsd->user) {
    books[kUserKey] = fit.hdsd->user->codebooks.detach().cpu();
    codes["train_user_codes"] = fit.train_user_codes.cpu();
  }
  const auto& any = fit.hdsd->items ? fit.hdsd->items : fit.hdsd->user;
  const std::map<std::string, std::string> meta = {{"format", kFormat},
                                                   {"version", kVersion},
                                                   {"levels", std::to_string(any->levels())},
                                                   {"codes", std::to_string(any->codes())},
                                                   {"item_rows", fit.stats.value("item_rows", std::string("input"))},
                                                   {"normalize", fit.stats.value("normalize", false) ? "true" : "false"},
                                                   {"config", config_yaml}};
  atomic_write_dir(dir, [&](const std::string& tmp) {
    safetensors::save(tmp + "/codebooks.safetensors", books, meta);
    safetensors::save(tmp + "/codes.safetensors", codes, meta);
    atomic_write_string(tmp + "/stats.json", fit.stats.dump(2) + "\n");
    atomic_write_string(tmp + "/config.yaml", config_yaml);
  });
}

void load_hdsd_codebooks(const std::string& dir, HdsdImpl& hdsd, ItemRows item_rows) {
  const std::string path = dir + "/codebooks.safetensors";
  if (!path_exists(path))
    throw CheckpointError("no codebooks at '" + path + "': pass the directory that sbtrec-quantize --out wrote");
  safetensors::File f(path);
  const auto fmt = f.header().metadata.find("format");
  if (fmt == f.header().metadata.end() || fmt->second != kFormat)
    throw CheckpointError(path + ": not an sbtrec codebooks file (metadata format is not '" + kFormat + "')");
  const auto version = f.header().metadata.find("version");
  if (version == f.header().metadata.end() || version->second != kVersion)
    throw CheckpointError(path + ": codebooks file version '" +
                          (version == f.header().metadata.end() ? std::string("none") : version->second) +
                          "' is not " + kVersion + " (written by another sbtrec? refit with sbtrec-quantize)");
  auto load = [&](ResidualQuantizerImpl& q, const char* key, const char* inputs) {
    if (!f.contains(key))
      throw CheckpointError(path + ": no tensor '" + key + "' (these codebooks were fitted without quantizer.inputs=" +
                            inputs + "; refit with sbtrec-quantize)");
    q.load_codebooks(f.get(key, torch::kFloat32, q.codebooks.device()), path + " key '" + key + "'");
  };
  // Files written before quantizer.item_rows existed were fitted on input rows.
  const auto rows = f.header().metadata.find("item_rows");
  const std::string fitted = rows == f.header().metadata.end() ? "input" : rows->second;
  const std::string wanted = config::choice_name(item_rows_choices(), item_rows);
  if (hdsd.items && fitted != wanted)
    throw CheckpointError(path + ": these item codebooks were fitted on the encoder's " + fitted +
                          " rows but quantizer.item_rows is " + wanted + "; refit with sbtrec-quantize --set quantizer.item_rows=" +
                          wanted + " or set quantizer.item_rows: " + fitted);
  // Files written before quantizer.normalize existed quantized the vectors as they are.
  const auto norm = f.header().metadata.find("normalize");
  const bool fitted_normalized = norm != f.header().metadata.end() && norm->second == "true";
  const auto& any = hdsd.items ? hdsd.items : hdsd.user;
  if (any && fitted_normalized != any->options().normalize)
    throw CheckpointError(path + ": these codebooks were fitted with quantizer.normalize " +
                          (fitted_normalized ? "true" : "false") + " but the config says " +
                          (fitted_normalized ? "false" : "true") + "; refit with sbtrec-quantize under this config");
  if (hdsd.items) load(*hdsd.items, kItemKey, "items or both");
  if (hdsd.items && hdsd.items->has_index() != f.contains(kIndexKey))
    throw CheckpointError(path + (f.contains(kIndexKey) ? ": these codebooks carry an extra code (quantizer.collisions: "
                                                          "index) but the config says keep"
                                                        : ": these codebooks have no extra code but quantizer.collisions "
                                                          "is index") +
                          "; refit with sbtrec-quantize under this config, or set quantizer.collisions as they were fitted");
  if (hdsd.items && hdsd.items->has_index())
    hdsd.items->load_index_codebook(f.get(kIndexKey, torch::kFloat32, hdsd.items->codebooks.device()),
                                    path + " key '" + kIndexKey + "'");
  if (hdsd.user) load(*hdsd.user, kUserKey, "user or both");
}

}  // namespace sbtrec::quantizer
