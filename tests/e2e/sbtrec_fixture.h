// Shared by the SBT-Rec end-to-end tests: LLaRA's SASRec imported once per test process and HDSD
// fitted on it, the command-line keys that point a run at them, and readers of the programs' output.
#pragma once
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../test_util.h"

namespace sbtrec::test {

struct SbtRecFixture {
  std::string encoder, codebooks;
};

// LLaRA's SASRec imported, and HDSD fitted on it for the SmolLM2 config (item codes on the scoring rows,
// configs/movielens/quantize_smollm.yaml; fewer Lloyd iterations than the config): once per build
// (script_fixture), shared by the tests' processes.
inline SbtRecFixture& sbtrec_fixture() {
  static SbtRecFixture f;
  if (f.encoder.empty()) {
    const std::string script =
        "out=$2\n" + std::string(SBTREC_PYTHON) + " " + source("scripts/import_llara_checkpoint.py") + " --checkpoint " +
        shared("models/llara-rec-models/movielens.pt") + " --out $out/enc\n" + bin("sbtrec-quantize") + " --config " +
        source("configs/movielens/quantize_smollm.yaml") + " --set data.root=" + shared("data/ml-100k") +
        " --encoder $out/enc --out $out/q --set quantizer.kmeans_iterations=5\n";
    std::string error;
    const std::string dir = script_fixture("sbtrec-movielens", script, &error);
    EXPECT_FALSE(dir.empty()) << error;
    if (!dir.empty()) f.encoder = dir + "/enc", f.codebooks = dir + "/q";
  }
  return f;
}

// --config (SmolLM2 on MovieLens) and the keys that point it at the fixture's encoder and codebooks.
inline std::string sbtrec_sets(const SbtRecFixture& f) {
  return " --config " + source("configs/movielens/sbtrec_smollm.yaml") + " --set data.root=" + shared("data/ml-100k") +
         " --set encoder.checkpoint=" + f.encoder + " --set quantizer.codebooks=" + f.codebooks +
         " --set prompt.templates=" + source("configs/prompts/movielens.txt");
}

inline nlohmann::json last_json_line(const std::string& out) {
  std::istringstream in(out);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;
  return nlohmann::json::parse(last);
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace sbtrec::test

#define SBTREC_REQUIRE_SBTREC_INPUTS()                          \
  SBTREC_REQUIRE_SHARED("models/llara-rec-models/movielens.pt"); \
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");                  \
  SBTREC_REQUIRE_MODEL();                                        \
  SBTREC_REQUIRE_PYTHON()
