// Options of the data stage (`data:`): where the dataset is, which format, and LLaRA's windowing
// protocol. The keys, their checks and help text are listed once, in visit_fields below.
#pragma once
#include <string>

#include "sbtrec/common/config_io.h"

namespace sbtrec {

enum class DataFormat { kGroupLens, kSbtrec };
inline const config::Choices<DataFormat>& data_formats() {
  static const config::Choices<DataFormat> c = {{"grouplens", DataFormat::kGroupLens}, {"sbtrec", DataFormat::kSbtrec}};
  return c;
}

struct DataOptions {
  DataFormat format = DataFormat::kGroupLens;
  std::string root;             // "" = $SBTREC_DATA, else data/ml-100k (resolved when the config is loaded)
  double min_rating = 3;        // grouplens: keep ratings >= this
  int max_history = 10;         // history window (most recent items)
  int min_history = 3;          // drop samples with a shorter history
  double train_fraction = 0.8;  // user split cut points int(f*N)
  double val_fraction = 0.1;
};

inline void visit_fields(DataOptions& o, config::Visitor& v) {
  v.field("format", o.format, "grouplens: raw MovieLens u.data/u.item; sbtrec: a dir made by scripts/import_llara_data.py",
          data_formats());
  v.field("root", o.root, "dataset directory; empty = $SBTREC_DATA, else data/ml-100k");
  v.field("min_rating", o.min_rating, "grouplens: keep ratings >= this");
  v.field("max_history", o.max_history, "history window: the most recent items of a sample", config::at_least(1));
  v.field("min_history", o.min_history, "drop samples whose history is shorter", config::at_least(0));
  v.field("train_fraction", o.train_fraction, "users before int(f N) train", config::in_half_open(0, 1));
  v.field("val_fraction", o.val_fraction, "the next int(f N) users validate, the rest test", config::in_half_open(0, 1));
  v.rule("min_history", o.min_history <= o.max_history, "must be <= data.max_history");
  v.rule("val_fraction", o.train_fraction > 0 && o.train_fraction + o.val_fraction < 1,
         "train_fraction > 0 and train_fraction + val_fraction < 1 are required (the test split needs users)");
}

}  // namespace sbtrec
