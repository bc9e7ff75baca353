// Options of the quantizer stage (`quantizer:`): HDSD's residual quantizer (L levels x K codes), which
// behaviour vectors it quantizes, its k-means++ initialisation, the optional VQ losses and dead-code
// reset. One switch per variant, as vector-quantize-pytorch's ResidualVQ names them.
#pragma once
#include <cstdint>
#include <string>

#include "sbtrec/common/config_io.h"

namespace sbtrec::quantizer {

// items: one token per item (LLaRA's layout, the encoder's item-embedding rows); user: one token per
// history (the paper's z = f_SR(i<n)); both: each kind with its own codebooks (they live in different spaces).
enum class QuantizerInputs { kItems, kUser, kBoth };
inline const config::Choices<QuantizerInputs>& quantizer_inputs() {
  static const config::Choices<QuantizerInputs> c = {
      {"items", QuantizerInputs::kItems}, {"user", QuantizerInputs::kUser}, {"both", QuantizerInputs::kBoth}};
  return c;
}
inline bool quantizes_items(QuantizerInputs i) { return i != QuantizerInputs::kUser; }
inline bool quantizes_user(QuantizerInputs i) { return i != QuantizerInputs::kItems; }

// Which rows of the frozen encoder stand for an item. input: its item-embedding row (LLaRA, the paper),
// what the encoder reads; output: its row of the scoring layer s_fc, what the encoder scores the
// user vector against (logit = row . z + bias). Only output rows share a space with the user vectors:
// on the behaviour-signal data the cosine of z and the candidates' output rows ranks the target first
// as often as SASRec (0.90), the cosine with input rows at chance (0.06).
enum class ItemRows { kInput, kOutput };
inline const config::Choices<ItemRows>& item_rows_choices() {
  static const config::Choices<ItemRows> c = {{"input", ItemRows::kInput}, {"output", ItemRows::kOutput}};
  return c;
}

// What happens to items whose full code tuple another item has too. keep: they share a behavioural token
// (the paper). index: TIGER's extra code, the item's rank among the items of its tuple (by item id),
// whose row of an extra codebook is added to MBSR's sum, so every item's token is its own.
enum class Collisions { kKeep, kIndex };
inline const config::Choices<Collisions>& collisions_choices() {
  static const config::Choices<Collisions> c = {{"keep", Collisions::kKeep}, {"index", Collisions::kIndex}};
  return c;
}

// Codes chosen fewer than `threshold` times over `window` optimizer steps (summed over the ranks) are
// re-seeded from the vectors of their kind that the codebooks reconstruct worst (after
// vector-quantize-pytorch's expiry, which draws from the current batch; off by default: the paper does
// not reset codes).
struct DeadCodeOptions {
  bool enabled = false;
  int threshold = 1;
  int window = 100;
};

struct QuantizerOptions {
  bool enabled = true;                             // false: continuous vectors to the aligner (w/o HDSD, LLaRA)
  std::string codebooks;                           // SBT-Rec trainer: sbtrec-quantize's --out dir; "" = fit at start
  int levels = 3;                                  // L (paper's best)
  int codes = 128;                                 // K per level (paper's best)
  QuantizerInputs inputs = QuantizerInputs::kBoth;
  ItemRows item_rows = ItemRows::kInput;           // the encoder's rows behind item tokens (quantized or not)
  int kmeans_iterations = 25;                      // Lloyd iterations after the k-means++ seeding, per level
  int64_t seed = -1;                               // k-means++ seeding; -1 = the run's top-level seed
  double codebook_loss = 0;                        // weight of |sg(r) - e|^2 (VQ-VAE); the paper uses none
  double commitment_loss = 0;                      // weight of |r - sg(e)|^2 (peers: 0.25 with a trained encoder)
  Collisions collisions = Collisions::kKeep;       // items sharing a full tuple: one token (keep) or an extra code
  bool normalize = false;                          // quantize x / ||x|| (k-means and every later code choice)
  DeadCodeOptions dead_codes;
};

inline void visit_fields(DeadCodeOptions& o, config::Visitor& v) {
  v.field("enabled", o.enabled, "re-seed codes that go unused during training (off: the paper keeps every code)");
  v.field("threshold", o.threshold, "a code chosen fewer times than this over a window is dead", config::at_least(1));
  v.field("window", o.window, "optimizer steps per usage window", config::at_least(1));
}

inline void visit_fields(QuantizerOptions& o, config::Visitor& v) {
  v.field("enabled", o.enabled, "SBT-Rec: quantize the behaviour vectors (false = continuous vectors, the w/o-HDSD ablation and LLaRA)");
  v.field("codebooks", o.codebooks,
          "SBT-Rec trainer: initial codebooks from sbtrec-quantize's --out directory; empty = fit them by k-means++ at the start");
  v.field("levels", o.levels, "residual levels L", config::at_least(1));
  v.field("codes", o.codes, "codes K per level (each kind needs at least K vectors to fit)", config::at_least(1));
  v.field("inputs", o.inputs,
          "items: the encoder's item-embedding rows (one token per item); user: the sequence representation of the "
          "history (one user token); both: each with its own codebooks",
          quantizer_inputs());
  v.field("item_rows", o.item_rows,
          "the encoder's rows behind item tokens, quantized or not: input = its item-embedding rows (LLaRA, the paper); "
          "output = its scoring layer's rows, in the user vectors' space (score = row . z + bias)",
          item_rows_choices());
  v.field("kmeans_iterations", o.kmeans_iterations, "Lloyd iterations after k-means++ seeding, per level",
          config::at_least(0));
  v.field("seed", o.seed, "seed of the k-means++ initialisation; -1 = the top-level seed", config::at_least<int64_t>(-1));
  v.field("codebook_loss", o.codebook_loss,
          "weight of the codebook loss, mean (sg(r) - e)^2 per level (0 = off, as the paper)", config::at_least(0.0));
  v.field("commitment_loss", o.commitment_loss,
          "weight of the commitment loss, mean (r - sg(e))^2 per level (0 = off; moves only inputs that require grad)",
          config::at_least(0.0));
  v.field("collisions", o.collisions,
          "items whose full code tuple another item has: keep = they share one behavioural token (the paper); index = "
          "TIGER's extra code, the item's rank among its tuple's items (by item id), whose row of an extra codebook "
          "(row 0 zero, the others drawn at the scale of the last residual; trained with the codebooks) joins MBSR's "
          "sum, so every item's token is unique. Items only",
          collisions_choices());
  v.field("normalize", o.normalize,
          "quantize the L2-normalised vectors x / ||x|| (k-means and every code choice, both kinds): long-tail items' "
          "near-zero rows no longer pile onto one code; MBSR's sum then approximates the unit vector");
  v.section("dead_codes", o.dead_codes, "re-seeding of codes unused during training");
}

}  // namespace sbtrec::quantizer
