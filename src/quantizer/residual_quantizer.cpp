// The residual quantizer (see residual_quantizer.h): nearest-code search, MBSR's sum of rows, k-means++
// initialisation, VQ losses, dead-code reset and statistics.
// Legend: N vectors, L levels, K codes per level, D vector width.
#include "sbtrec/quantizer/residual_quantizer.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "sbtrec/common/counter_rng.h"
#include "sbtrec/common/error.h"

namespace sbtrec::quantizer {
namespace {

// Rows of the [N, K] distance matrix computed at once: bounds memory at K = 1024 with N in the 100k.
constexpr int64_t kDistanceChunk = 16384;

double uniform01(CounterStream& rng) { return (double)(rng.next() >> 11) * 0x1.0p-53; }

std::string shape_of(const torch::Tensor& t) { return c10::str(t.sizes()); }

// Squared L2 distance of every row of r64 [N, D] to one point p [D], both float64: [N].
torch::Tensor distance_to(const torch::Tensor& r64, const torch::Tensor& p) { return (r64 - p).pow(2).sum(1); }

// k-means++ (Arthur and Vassilvitskii 2007): the first center uniform, each next one drawn with
// probability proportional to the squared distance to the nearest center so far. r [N, D] -> [K, D].
torch::Tensor kmeans_pp_seed(const torch::Tensor& r64, int64_t K, CounterStream& rng) {
  const int64_t N = r64.size(0);
  std::vector<int64_t> chosen{(int64_t)rng.below((uint64_t)N)};
  auto dmin = distance_to(r64, r64[chosen[0]]);  // [N]
  for (int64_t k = 1; k < K; ++k) {
    const auto cum = dmin.cumsum(0);  // [N]
    const double total = cum[N - 1].item<double>();
    int64_t pick;
    if (total > 0) {
      // The smallest i with cum[i] > u: a row of positive weight, as the draw requires.
      auto u = torch::full({1}, uniform01(rng) * total, cum.options());
      pick = std::min<int64_t>(torch::searchsorted(cum, u, /*out_int32=*/false, /*right=*/true).item<int64_t>(), N - 1);
    } else {
      // Every residual already is a center: fewer than K distinct ones. The extra codes repeat
      // centers; ties go to the lowest index, so they are never chosen (the usage statistic shows it).
      pick = chosen[(size_t)k % chosen.size()];
    }
    chosen.push_back(pick);
    dmin = torch::minimum(dmin, distance_to(r64, r64[pick]));
  }
  return r64.index_select(0, torch::tensor(chosen, torch::dtype(torch::kInt64).device(r64.device())));  // [K, D]
}

// One Lloyd step: each center moves to the mean of its points. A center left without points is
// re-seeded with the point farthest from its own center (distinct points for distinct empty centers).
torch::Tensor lloyd_step(const torch::Tensor& r64, const torch::Tensor& centers, const torch::Tensor& assign) {
  const int64_t K = centers.size(0);
  auto sums = torch::zeros_like(centers).index_add_(0, assign, r64);                  // [K, D]
  auto counts = torch::bincount(assign, /*weights=*/{}, K).to(torch::kFloat64);      // [K]
  auto moved = torch::where(counts.gt(0).unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1), centers);  // [K, D]
  auto empty = counts.eq(0).nonzero().squeeze(1);                                     // [E]
  if (empty.numel() > 0) {
    auto err = (r64 - centers.index_select(0, assign)).pow(2).sum(1);                 // [N]
    auto order = std::get<1>(torch::sort(err, /*stable=*/true, /*dim=*/0, /*descending=*/true));  // [N]
    const int64_t E = std::min<int64_t>(empty.numel(), r64.size(0));
    moved.index_copy_(0, empty.slice(0, 0, E), r64.index_select(0, order.slice(0, 0, E)));
  }
  return moved;
}

// HDSD's pass (Algorithm 1), no grad: per level the nearest code of the residual, then the residual
// update. Fills `residuals` (the residual each level quantized, [N, D] each) when given.
torch::Tensor residual_pass(const torch::Tensor& codebooks, const torch::Tensor& x, std::vector<torch::Tensor>* residuals) {
  torch::NoGradGuard no_grad;
  const int64_t L = codebooks.size(0);
  auto cb = codebooks.detach();                            // [L, K, D]
  auto r = x.detach().to(cb.device(), cb.scalar_type());  // [N, D]
  auto indices = torch::empty({x.size(0), L}, torch::dtype(torch::kInt64).device(cb.device()));  // [N, L]
  for (int64_t l = 0; l < L; ++l) {
    auto idx = nearest_codes(r, cb[l]);  // [N]
    indices.select(1, l).copy_(idx);
    if (residuals) residuals->push_back(r);
    r = r - cb[l].index_select(0, idx);  // [N, D]
  }
  return indices;
}

void check_vectors(const torch::Tensor& x, int64_t dim, const char* what) {
  if (x.dim() != 2 || x.size(1) != dim)
    throw ConfigError(std::string(what) + ": the quantizer takes vectors [N, " + std::to_string(dim) + "], got " +
                      shape_of(x) + " (quantizer built for width " + std::to_string(dim) + ")");
}

// Rows of the chosen codes [N, L, D] from the parameter itself: index_select's backward adds the upstream
// gradient into exactly these rows (summed where several vectors chose one code) and leaves others at 0.
torch::Tensor chosen_rows(const torch::Tensor& codebooks, const torch::Tensor& indices) {
  const int64_t L = codebooks.size(0), K = codebooks.size(1), D = codebooks.size(2);
  auto offsets = torch::arange(L, indices.options()) * K;                              // [L]
  auto flat = (indices.to(codebooks.device()) + offsets).reshape(-1);                  // [N * L]
  return codebooks.view({L * K, D}).index_select(0, flat).view({indices.size(0), L, D});  // [N, L, D]
}

}  // namespace

torch::Tensor nearest_codes(const torch::Tensor& r, const torch::Tensor& codebook) {
  torch::NoGradGuard no_grad;
  // float64 keeps the argmin equal to the exact one: ||r||^2 is dropped (the same for every code of a
  // row), which in float32 could let rounding reorder nearly equidistant codes.
  auto c = codebook.detach().to(torch::kFloat64);  // [K, D]
  auto c2 = c.pow(2).sum(1).unsqueeze(0);          // [1, K]
  const int64_t N = r.size(0);
  auto out = torch::empty({N}, torch::dtype(torch::kInt64).device(r.device()));  // [N]
  for (int64_t b = 0; b < N; b += kDistanceChunk) {
    const int64_t e = std::min(N, b + kDistanceChunk);
    auto rc = r.slice(0, b, e).detach().to(torch::kFloat64);  // [n, D]
    auto d = c2 - 2 * rc.matmul(c.t());                       // [n, K]
    out.slice(0, b, e).copy_(d.argmin(1));                    // first minimum: ties -> lowest index
  }
  return out;
}

std::vector<std::vector<int64_t>> shared_tuples(const torch::Tensor& indices) {
  auto idx = indices.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t N = idx.size(0), L = idx.size(1);
  const int64_t* p = idx.data_ptr<int64_t>();
  std::map<std::vector<int64_t>, std::vector<int64_t>> by_tuple;
  for (int64_t i = 0; i < N; ++i) by_tuple[std::vector<int64_t>(p + i * L, p + (i + 1) * L)].push_back(i);
  std::vector<std::vector<int64_t>> groups;
  for (auto& [tuple, rows] : by_tuple)
    if (rows.size() > 1) groups.push_back(std::move(rows));
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  return groups;
}

nlohmann::json QuantizerStats::to_json() const {
  nlohmann::json lv = nlohmann::json::array();
  for (const auto& l : levels)
    lv.push_back({{"used", l.used}, {"usage", l.usage}, {"perplexity", l.perplexity}, {"relative_error", l.relative_error}});
  return {{"vectors", vectors},
          {"levels", lv},
          {"relative_error", relative_error},
          {"distinct_tuples", distinct_tuples},
          {"collisions", collisions},
          {"collision_rate", collision_rate},
          {"largest_shared_tuple", largest_shared_tuple}};
}

ResidualQuantizerImpl::ResidualQuantizerImpl(const QuantizerOptions& options, int64_t dim) : options_(options) {
  if (options.levels < 1 || options.codes < 1 || dim < 1)
    throw ConfigError("quantizer: levels, codes and the vector width must be >= 1 (got " + std::to_string(options.levels) +
                      ", " + std::to_string(options.codes) + ", " + std::to_string(dim) + ")");
  codebooks = register_parameter("codebooks", torch::zeros({options.levels, options.codes, dim}));  // [L, K, D]
  // One zero row until a fit or a file sizes it.
  if (options.collisions == Collisions::kIndex) index_codebook = register_parameter("index_codebook", torch::zeros({1, dim}));  // [C, D]
}

torch::Tensor ResidualQuantizerImpl::prepared(const torch::Tensor& x) const {
  if (!options_.normalize) return x;
  return x / x.norm(2, 1, true).clamp_min(1e-12);  // [N, D]
}

torch::Tensor ResidualQuantizerImpl::encode(const torch::Tensor& x) const {
  check_vectors(x, dim(), "ResidualQuantizer::encode");
  return residual_pass(codebooks, prepared(x), nullptr);
}

torch::Tensor collision_ranks(const torch::Tensor& indices) {
  auto idx = indices.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t N = idx.size(0), L = idx.size(1);
  const int64_t* p = idx.data_ptr<int64_t>();
  std::map<std::vector<int64_t>, int64_t> seen;
  auto rank = torch::empty({N}, torch::kInt64);  // [N]
  auto* r = rank.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) r[i] = seen[std::vector<int64_t>(p + i * L, p + (i + 1) * L)]++;
  return rank.to(indices.device());
}

void ResidualQuantizerImpl::make_index_codebook(const torch::Tensor& rank, const torch::Tensor& residual, uint64_t seed) {
  TORCH_CHECK(has_index(), "make_index_codebook: quantizer.collisions is not index");
  torch::NoGradGuard no_grad;
  const int64_t C = rank.numel() ? rank.max().item<int64_t>() + 1 : 1, D = dim();
  const double s = residual.numel() ? std::sqrt(residual.detach().to(torch::kFloat64).pow(2).mean().item<double>()) : 0.0;
  // Box-Muller on the counter stream (torch's generator plays no part): the same rows on every machine.
  std::vector<float> rows((size_t)(C * D), 0.0f);
  CounterStream rng(seed);
  for (size_t i = (size_t)D; i < rows.size(); ++i) {
    const double u1 = 1.0 - uniform01(rng), u2 = uniform01(rng);
    rows[i] = (float)(s * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
  index_codebook.set_data(torch::tensor(rows).view({C, D}).to(codebooks.device()));  // [C, D]
}

torch::Tensor ResidualQuantizerImpl::extra_rows(const torch::Tensor& rank) const {
  TORCH_CHECK(has_index(), "extra_rows: quantizer.collisions is not index");
  return index_codebook.index_select(0, rank.to(index_codebook.device()).clamp_max(index_codebook.size(0) - 1));  // [N, D]
}

void ResidualQuantizerImpl::load_index_codebook(const torch::Tensor& t, const std::string& source) {
  TORCH_CHECK(has_index(), "load_index_codebook: quantizer.collisions is not index");
  if (t.dim() != 2 || t.size(0) < 1 || t.size(1) != dim())
    throw CheckpointError(source + ": the extra codebook has shape " + shape_of(t) + " but the quantizer needs [C, " +
                          std::to_string(dim()) + "] (quantizer.collisions: index; the encoder's width)");
  if (!t.is_floating_point() || !torch::isfinite(t).all().item<bool>())
    throw CheckpointError(source + ": the extra codebook must be finite floating-point values");
  torch::NoGradGuard no_grad;
  index_codebook.set_data(t.to(codebooks.device(), codebooks.scalar_type()).clone());  // [C, D]
}

torch::Tensor ResidualQuantizerImpl::decode(const torch::Tensor& indices) const {
  if (indices.dim() != 2 || indices.size(1) != levels())
    throw ConfigError("ResidualQuantizer::decode: indices must be [N, " + std::to_string(levels()) + "], got " +
                      shape_of(indices));
  return chosen_rows(codebooks, indices).sum(1);  // [N, D]
}

QuantizerOutput ResidualQuantizerImpl::forward(const torch::Tensor& x) {
  check_vectors(x, dim(), "ResidualQuantizer::forward");
  std::vector<torch::Tensor> residuals;
  QuantizerOutput out;
  const auto xp = prepared(x);                              // [N, D]
  out.indices = residual_pass(codebooks, xp, &residuals);  // [N, L]
  auto rows = chosen_rows(codebooks, out.indices);         // [N, L, D]
  out.e_rq = rows.sum(1);                                  // [N, D]
  out.loss = torch::zeros({}, codebooks.options().requires_grad(false));  // []
  const bool losses = options_.codebook_loss > 0 || options_.commitment_loss > 0;
  if (losses && x.size(0) > 0) {
    auto xd = xp.to(codebooks.device(), codebooks.scalar_type());  // [N, D], keeps x's graph for the commitment term
    for (int64_t l = 0; l < levels(); ++l) {
      auto e = rows.select(1, l);  // [N, D]
      // Each term is the mean over the N x D elements, summed over levels (VQ-VAE's MSE per level).
      if (options_.codebook_loss > 0) out.loss = out.loss + options_.codebook_loss * (residuals[(size_t)l] - e).pow(2).mean();
      if (options_.commitment_loss > 0) {
        // r_l = x - (codes of earlier levels, stop-gradient): its gradient reaches x only.
        auto r = xd - (xd.detach() - residuals[(size_t)l]);  // [N, D]
        out.loss = out.loss + options_.commitment_loss * (r - e.detach()).pow(2).mean();
      }
    }
  }
  if (is_training() && options_.dead_codes.enabled) count_usage(out.indices);
  return out;
}

void ResidualQuantizerImpl::count_usage(const torch::Tensor& indices) {
  const int64_t L = levels(), K = codes();
  if (!usage_.defined()) usage_ = torch::zeros({L, K}, torch::kInt64);  // [L, K]
  auto idx = indices.cpu();                                             // [N, L]
  for (int64_t l = 0; l < L; ++l) usage_[l] += torch::bincount(idx.select(1, l), /*weights=*/{}, K);
}

int64_t ResidualQuantizerImpl::end_step(const torch::Tensor& pool, const std::function<void(torch::Tensor&)>& sum_over_ranks) {
  if (!options_.dead_codes.enabled || ++window_steps_ < options_.dead_codes.window) return 0;
  torch::NoGradGuard no_grad;
  const int64_t L = levels(), K = codes();
  auto usage = usage_.defined() ? usage_.clone() : torch::zeros({L, K}, torch::kInt64);  // [L, K]
  if (sum_over_ranks) sum_over_ranks(usage);
  usage_ = torch::Tensor();
  window_steps_ = 0;
  if (usage.sum().item<int64_t>() == 0) return 0;  // not used this window (a kind the prompts do not carry)
  // The pool's residuals level by level, from the current codebooks: at each level the worst-
  // reconstructed vectors are where a code is missing.
  std::vector<torch::Tensor> residuals;
  auto x = prepared(pool.detach()).to(codebooks.device(), codebooks.scalar_type());  // [P, D]
  auto indices = residual_pass(codebooks, x, &residuals);                    // [P, L]
  int64_t reseeded = 0;
  for (int64_t l = 0; l < L; ++l) {
    auto dead = usage[l].lt(options_.dead_codes.threshold).nonzero().squeeze(1).to(codebooks.device());  // [E]
    if (dead.numel() == 0) continue;
    const auto& r = residuals[(size_t)l];                                                // [P, D]
    auto err = (r - codebooks[l].index_select(0, indices.select(1, l))).pow(2).sum(1);  // [P]
    auto order = std::get<1>(torch::sort(err, /*stable=*/true, /*dim=*/0, /*descending=*/true));  // [P]
    const int64_t E = std::min<int64_t>(dead.numel(), r.size(0));
    codebooks[l].index_copy_(0, dead.slice(0, 0, E), r.index_select(0, order.slice(0, 0, E)));
    reseeded += E;
  }
  return reseeded;
}

nlohmann::json ResidualQuantizerImpl::dead_code_state() const {
  nlohmann::json usage = nlohmann::json::array();
  if (usage_.defined())
    for (int64_t l = 0; l < levels(); ++l) {
      auto row = usage_[l].contiguous();
      usage.push_back(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()));
    }
  return {{"steps", window_steps_}, {"usage", usage}};
}

void ResidualQuantizerImpl::restore_dead_code_state(const nlohmann::json& state) {
  window_steps_ = state.at("steps").get<int64_t>();
  usage_ = torch::Tensor();
  const auto& usage = state.at("usage");
  if (usage.empty()) return;
  if ((int64_t)usage.size() != levels())
    throw CheckpointError("dead-code state: " + std::to_string(usage.size()) + " levels of counts, the quantizer has " +
                          std::to_string(levels()));
  usage_ = torch::zeros({levels(), codes()}, torch::kInt64);
  for (int64_t l = 0; l < levels(); ++l) {
    const auto row = usage[(size_t)l].get<std::vector<int64_t>>();
    if ((int64_t)row.size() != codes())
      throw CheckpointError("dead-code state: level " + std::to_string(l) + " has " + std::to_string(row.size()) +
                            " counts, the quantizer " + std::to_string(codes()) + " codes");
    usage_[l].copy_(torch::tensor(row, torch::kInt64));
  }
}

void ResidualQuantizerImpl::init_kmeans_pp(const torch::Tensor& x, uint64_t seed) {
  check_vectors(x, dim(), "ResidualQuantizer::init_kmeans_pp");
  const int64_t N = x.size(0), L = levels(), K = codes();
  if (N < K)
    throw ConfigError("quantizer.codes=" + std::to_string(K) + " exceeds the " + std::to_string(N) +
                      " vectors to fit: K distinct codes need at least K vectors; lower quantizer.codes");
  torch::NoGradGuard no_grad;
  auto r = prepared(x.detach()).to(codebooks.device(), codebooks.scalar_type()).clone();  // [N, D]
  if (!torch::isfinite(r).all().item<bool>())
    throw ConfigError("ResidualQuantizer::init_kmeans_pp: the vectors contain NaN or inf (a diverged encoder?)");
  CounterStream rng(seed);
  for (int64_t l = 0; l < L; ++l) {
    auto r64 = r.to(torch::kFloat64);                                     // [N, D]
    auto centers = kmeans_pp_seed(r64, K, rng);                           // [K, D]
    for (int it = 0; it < options_.kmeans_iterations; ++it) centers = lloyd_step(r64, centers, nearest_codes(r64, centers));
    codebooks[l].copy_(centers);
    // The next level sees the residual that the forward pass will see: nearest of the float32 codes.
    r = r - codebooks[l].index_select(0, nearest_codes(r, codebooks[l]));  // [N, D]
  }
  usage_ = torch::Tensor();
  window_steps_ = 0;
}

void ResidualQuantizerImpl::load_codebooks(const torch::Tensor& t, const std::string& source) {
  if (t.sizes() != codebooks.sizes())
    throw CheckpointError(source + ": codebooks have shape " + shape_of(t) + " but the quantizer needs " + shape_of(codebooks) +
                          " [levels, codes, width] (quantizer.levels / quantizer.codes of the config, the encoder's width)");
  if (!t.is_floating_point() || !torch::isfinite(t).all().item<bool>())
    throw CheckpointError(source + ": codebooks must be finite floating-point values");
  torch::NoGradGuard no_grad;
  codebooks.copy_(t);
  usage_ = torch::Tensor();
  window_steps_ = 0;
}

QuantizerStats ResidualQuantizerImpl::stats(const torch::Tensor& x) const {
  check_vectors(x, dim(), "ResidualQuantizer::stats");
  torch::NoGradGuard no_grad;
  const int64_t N = x.size(0), L = levels(), K = codes();
  QuantizerStats s;
  s.vectors = N;
  const auto xp = prepared(x.detach());                      // [N, D]
  auto indices = residual_pass(codebooks, xp, nullptr);       // [N, L]
  auto xd = xp.to(codebooks.device(), torch::kFloat64);       // [N, D]
  const double x_norm = std::sqrt(xd.pow(2).sum().item<double>());
  auto recon = torch::zeros_like(xd);                         // [N, D]
  for (int64_t l = 0; l < L; ++l) {
    auto idx = indices.select(1, l);                          // [N]
    LevelStats ls;
    auto counts = torch::bincount(idx, /*weights=*/{}, K).to(torch::kFloat64);  // [K]
    ls.used = counts.gt(0).sum().item<int64_t>();
    ls.usage = (double)ls.used / (double)K;
    if (N > 0) {
      auto p = counts.index_select(0, counts.gt(0).nonzero().squeeze(1)) / (double)N;  // [used]
      ls.perplexity = std::exp(-(p * p.log()).sum().item<double>());
    }
    recon += codebooks[l].to(torch::kFloat64).index_select(0, idx);
    ls.relative_error = x_norm > 0 ? std::sqrt((xd - recon).pow(2).sum().item<double>()) / x_norm : 0.0;
    s.levels.push_back(ls);
  }
  s.relative_error = s.levels.back().relative_error;
  s.distinct_tuples = N > 0 ? std::get<0>(torch::unique_dim(indices, 0)).size(0) : 0;
  s.collisions = N - s.distinct_tuples;
  s.collision_rate = N > 0 ? (double)s.collisions / (double)N : 0.0;
  s.largest_shared_tuple = N > 0 ? collision_ranks(indices).max().item<int64_t>() + 1 : 0;
  return s;
}

}  // namespace sbtrec::quantizer
