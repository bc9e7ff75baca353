// Options of the encoder stage (`encoder:`, called `model:` before sbtrec 0.2): which sequential
// recommender and its sizes. Keys, checks and help text are listed once, in the visit_fields below.
#pragma once
#include <vector>

#include "sbtrec/common/config_io.h"

namespace sbtrec {

enum class EncoderType { kSASRec, kGRU4Rec, kCaser };
inline const config::Choices<EncoderType>& encoder_types() {
  static const config::Choices<EncoderType> c = {
      {"sasrec", EncoderType::kSASRec}, {"gru4rec", EncoderType::kGRU4Rec}, {"caser", EncoderType::kCaser}};
  return c;
}
inline const char* encoder_name(EncoderType t) { return config::choice_name(encoder_types(), t); }

struct SASRecOptions {
  int num_blocks = 1;
  int num_heads = 1;
};
struct GRU4RecOptions {
  int num_layers = 1;
  double dropout = 0.0;  // on item embeddings and the final state; LLaRA's GRU4Rec has none
};
struct CaserOptions {
  int num_filters = 16;
  std::vector<int> filter_sizes = {2, 3, 4};
};

struct EncoderOptions {
  EncoderType type = EncoderType::kSASRec;
  int hidden_size = 64;
  int max_len = 10;      // padded sequence length T (>= data.max_history)
  std::string checkpoint;  // SBT-Rec: the frozen encoder (a checkpoint dir or the run dir holding it)
  double dropout = 0.1;  // SASRec and Caser (LLaRA's GRU4Rec has no dropout)
  SASRecOptions sasrec;
  GRU4RecOptions gru4rec;
  CaserOptions caser;
};

inline void visit_fields(SASRecOptions& o, config::Visitor& v) {
  v.field("num_blocks", o.num_blocks, "transformer blocks", config::at_least(1));
  v.field("num_heads", o.num_heads, "attention heads (must divide encoder.hidden_size)", config::at_least(1));
}
inline void visit_fields(GRU4RecOptions& o, config::Visitor& v) {
  v.field("num_layers", o.num_layers, "GRU layers", config::at_least(1));
  v.field("dropout", o.dropout, "dropout on item embeddings and the final state (LLaRA: none)", config::in_half_open(0, 1));
}
inline void visit_fields(CaserOptions& o, config::Visitor& v) {
  v.field("num_filters", o.num_filters, "horizontal filters per height", config::at_least(1));
  v.field("filter_sizes", o.filter_sizes, "heights of the horizontal filters", config::each_at_least(1, true));
}
inline void visit_fields(EncoderOptions& o, config::Visitor& v) {
  v.field("type", o.type, "the sequential recommender", encoder_types());
  v.field("hidden_size", o.hidden_size, "item-embedding width D", config::at_least(1));
  v.field("max_len", o.max_len, "padded history length T (>= data.max_history)", config::at_least(1));
  v.field("dropout", o.dropout, "SASRec and Caser dropout", config::in_half_open(0, 1));
  v.field("checkpoint", o.checkpoint,
          "SBT-Rec: the frozen encoder whose vectors become behavioural tokens (a checkpoint directory or the run "
          "directory holding checkpoint/; train one with configs/<dataset>/sasrec.yaml or import LLaRA's)");
  v.section("sasrec", o.sasrec, "SASRec (type: sasrec)");
  v.section("gru4rec", o.gru4rec, "GRU4Rec (type: gru4rec)");
  v.section("caser", o.caser, "Caser (type: caser)");
  v.rule("sasrec.num_heads", o.hidden_size % o.sasrec.num_heads == 0, "must divide encoder.hidden_size");
  bool heights_fit = true;
  for (int h : o.caser.filter_sizes) heights_fit = heights_fit && h <= o.max_len;
  v.rule("caser.filter_sizes", heights_fit, "each height must be in [1, encoder.max_len]");
}

}  // namespace sbtrec
