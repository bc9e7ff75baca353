// The behaviour-signal data of the behaviour tests (`sbtrec-data synth --titles random`: titles say
// nothing, rings of items carry the sequence), SASRec trained on it and HDSD fitted on its scoring
// rows: made once per build and shared by the tests' processes; and the keys that point the shipped
// SmolLM2 config at them.
#pragma once
#include <string>

#include "sbtrec_fixture.h"

namespace sbtrec::test {

// Data, SASRec and HDSD once per build (script_fixture), shared by the tests' processes.
struct Bsig {
  std::string data, enc, q;
};
inline Bsig& bsig() {
  static Bsig b;
  if (b.data.empty()) {
    const std::string script =
        "out=$2\n" + bin("sbtrec-data") + " synth --titles random --users 300 --items 120 --out $out/data\n" +
        bin("sbtrec-train") + " --config " + source("configs/movielens/sasrec.yaml") +
        " --set data.root=$out/data --set output_dir=$out/enc --set train.epochs=15 --json\n" +
        bin("sbtrec-quantize") + " --config " + source("configs/movielens/quantize_smollm.yaml") +
        " --set data.root=$out/data --encoder $out/enc --set quantizer.codes=16 --set quantizer.kmeans_iterations=3"
        " --out $out/q\n";
    std::string error;
    const std::string dir = script_fixture("behaviour-signal", script, &error);
    EXPECT_FALSE(dir.empty()) << error;
    if (!dir.empty()) b.data = dir + "/data", b.enc = dir + "/enc", b.q = dir + "/q";
  }
  return b;
}

// The shipped SmolLM2 config (or CONFIG) pointed at the fixture's data, encoder and codebooks.
inline std::string bsig_sets(const Bsig& b, const std::string& config = "configs/movielens/sbtrec_smollm.yaml") {
  return " --config " + source(config) + " --set data.root=" + b.data + " --set encoder.checkpoint=" + b.enc +
         " --set quantizer.codebooks=" + b.q + " --set quantizer.codes=16 --set prompt.templates=" +
         source("configs/prompts/movielens.txt");
}

}  // namespace sbtrec::test
