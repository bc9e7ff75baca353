// The project's own dataset directory ("sbtrec dataset dir", version 1), written by
// scripts/import_llara_data.py from LLaRA's processed pickles (LastFM, Steam):
//   dataset.json  {"format": "sbtrec-dataset", "version": 1, "name", "num_items", ...}
//   items.tsv     id<TAB>title, one line per item id 0..num_items-1 (UTF-8)
//   train.tsv / val.tsv / test.tsv   user_id<TAB>h1 h2 ... hk<TAB>target (history oldest first, no
//                 padding, may be empty; every row kept: the loader applies the window and filter)
// Interactions (`sbtrec-data stats`): per user, max(rows, longest history + 1), the interactions the
// files show; LLaRA's processed files cap histories at 10 items, so this is below the raw count
// (LastFM: 52,925 shown, 73,510 in LLaRA's table of the raw data).
#pragma once
#include "sbtrec/data/dataset.h"

namespace sbtrec::data {

Dataset load_imported(const DataOptions& opt);

}  // namespace sbtrec::data
