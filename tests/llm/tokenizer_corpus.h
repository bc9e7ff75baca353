// The shared-data part of the tokenizer parity corpora (tokenizer_test.cpp, bpe_tokenizer_test.cpp):
// every MovieLens title and the LastFM artist and Steam game names from ../shared, the texts the
// recommender's prompts are made of. Missing files give fewer texts; the tests require them first.
#pragma once
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "sbtrec/data/dataset.h"

namespace sbtrec::test {

// At most `per_file` names from each id2name.txt ("id::name" lines).
inline std::vector<std::string> shared_titles(int per_file) {
  std::vector<std::string> c;
  DataOptions ml;
  ml.root = shared("data/ml-100k");
  if (std::filesystem::exists(ml.root + "/u.item")) {
    auto ds = data::load_dataset(ml);
    c.insert(c.end(), ds.titles.begin(), ds.titles.end());
  }
  for (const char* rel : {"data/llara/lastfm/id2name.txt", "data/llara/steam/id2name.txt"}) {
    std::istringstream in(read_text(shared(rel)));
    int k = 0;
    for (std::string line; std::getline(in, line) && k < per_file; ++k) {
      const auto sep = line.find("::");
      if (sep != std::string::npos) c.push_back(line.substr(sep + 2));
    }
  }
  return c;
}

}  // namespace sbtrec::test
