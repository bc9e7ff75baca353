// Options of the aligner stage (`aligner:`): the RAM-Aligner's form and width, whether user and item
// tokens share it, and how its inputs and outputs are scaled (ram_aligner.h).
#pragma once
#include <cstdint>

#include "sbtrec/common/config_io.h"

namespace sbtrec::aligner {

enum class AlignerType { kMlp, kLinear };
inline const config::Choices<AlignerType>& aligner_types() {
  static const config::Choices<AlignerType> c = {{"mlp", AlignerType::kMlp}, {"linear", AlignerType::kLinear}};
  return c;
}

// What reaches the aligner: the vector as it is (the paper), or scaled to unit length, so that user
// vectors and item rows (which differ mostly in scale: SASRec scores by their dot product) meet in one
// space and tokens differ by direction alone.
enum class InputNorm { kNone, kUnit };
inline const config::Choices<InputNorm>& input_norms() {
  static const config::Choices<InputNorm> c = {{"none", InputNorm::kNone}, {"unit", InputNorm::kUnit}};
  return c;
}
// The aligner's output scale: as trained (the paper; at PyTorch's initialisation the tokens are about
// twice as long as the LLM's embedding rows), or each token rescaled to the mean norm of the
// embedding rows, so behavioural tokens always look like tokens to the LLM in scale.
enum class OutputScale { kNone, kEmbeddings };
inline const config::Choices<OutputScale>& output_scales() {
  static const config::Choices<OutputScale> c = {{"none", OutputScale::kNone}, {"embeddings", OutputScale::kEmbeddings}};
  return c;
}

struct AlignerOptions {
  AlignerType type = AlignerType::kMlp;
  int64_t hidden_size = 0;  // H; 0 = the LLM's embedding width (LLaRA)
  bool shared = false;      // one aligner for user and item tokens (needs the user width == the item width)
  InputNorm input_norm = InputNorm::kNone;
  OutputScale output_scale = OutputScale::kNone;
  // > 0: the aligner's last layer scores this many fixed rows of the LLM's own embedding table (a
  // palette) and the token is their softmax mixture, so tokens start out as words the LLM can read.
  int64_t palette_size = 0;
  double palette_sharpness = 4.0;  // the palette scores are standardised per token, then times this
  // The user token becomes the token of the item whose row is closest to the user vector in cosine
  // (with quantizer.item_rows output: the encoder's own top item), so it equals one item token exactly.
  bool user_as_item = false;
};

inline void visit_fields(AlignerOptions& o, config::Visitor& v) {
  v.field("type", o.type, "mlp = Linear-GELU-Linear (RAM-Aligner); linear = one Linear (the paper's w/o-RAM ablation)",
          aligner_types());
  v.field("hidden_size", o.hidden_size, "hidden width of the mlp; 0 = the LLM's embedding width (LLaRA)",
          config::at_least<int64_t>(0));
  v.field("shared", o.shared,
          "one aligner for user and item tokens, so a user token lands where the items it scores highly land (false: "
          "one aligner per kind, the paper)");
  v.field("input_norm", o.input_norm, "none: the vector as it is (the paper); unit: scaled to length 1 first",
          input_norms());
  v.field("output_scale", o.output_scale,
          "none: the aligner's own scale (the paper); embeddings: every token rescaled to the mean norm of the LLM's "
          "embedding rows",
          output_scales());
  v.field("palette_size", o.palette_size,
          "> 0: each token is a softmax mixture of this many fixed rows of the LLM's embedding table (spread evenly over "
          "its vocabulary), scored by the aligner, so tokens begin as words the LLM reads; 0 = the aligner writes the "
          "embedding itself (the paper)",
          config::at_least<int64_t>(0));
  v.field("palette_sharpness", o.palette_sharpness,
          "palette: the scores are standardised per token and multiplied by this before the softmax (higher = closer to "
          "one word)",
          config::greater_than(0));
  v.field("user_as_item", o.user_as_item,
          "the user token is the token of the item whose row is closest to the user vector in cosine (with "
          "quantizer.item_rows output: the encoder's top item), so it equals that item's token exactly; false = the "
          "user vector's own token (the paper)");
}

}  // namespace sbtrec::aligner
