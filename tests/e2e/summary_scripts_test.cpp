// The tables of scripts/quality_run.sh and scripts/behaviour_signal.sh (scripts/quality_summary.py,
// scripts/behaviour_signal_summary.py, statistics in scripts/paired_stats.py) on run directories laid out
// as those scripts leave them: 12 test cases, SBT-Rec right on all 12, text-only on case 0 only, so the
// paired test has 11 discordant cases all won (exact McNemar p = 2 / 2^11 = 0.00098) and SBT-Rec's
// Wilson interval is [0.758, 1].
#include <filesystem>

#include "../test_util.h"

using namespace sbtrec;

namespace {
void write_variant(const std::string& out, const std::string& v, int hits) {
  std::filesystem::create_directories(out + "/" + v);
  std::string gen, lik;
  for (int i = 0; i < 12; ++i) {
    const bool hit = i < hits;
    gen += "{\"hit\": " + std::string(hit ? "true" : "false") + ", \"valid\": true}\n";
    lik += "{\"rank\": " + std::to_string(hit ? 0 : 7) + ", \"rank_tokens_permuted\": 9}\n";
  }
  test::write_text(out + "/" + v + "/predictions.jsonl", gen);  // training's, by generation
  test::write_text(out + "/" + v + "/predictions_test_likelihood.jsonl", lik);  // sbtrec-eval's
  test::write_text(out + "/" + v + "/metrics.jsonl",
                   "{\"split\": \"val_curve\", \"step\": 0, \"hr@1\": 0.1}\n"
                   "{\"split\": \"train\", \"step\": 10, \"loss\": 1.5}\n");
  const double hr = hits / 12.0;
  test::write_text(out + "/" + v + "_likelihood.json",
                   "{\"hr@1\": " + std::to_string(hr) + ", \"hr@5\": 1.0, \"ndcg@5\": 0.5}");
  test::write_text(out + "/" + v + ".json", "{\"first_loss\": 2.0, \"last_loss\": 1.0, \"seconds\": 120}");
}
}  // namespace

TEST(SummaryScripts, PairedTestsAndIntervalsOfBothTables) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const std::string q = dir / "quality", b = dir / "bsig";
  for (const auto& out : {q, b}) {
    write_variant(out, "sbtrec", 12);
    write_variant(out, "text_only", 1);
  }
  test::write_text(q + "/sasrec.json", "{\"hr@1\": 0.5, \"n\": 12}");
  test::write_text(b + "/sasrec.json", "{\"test\": {\"hr@1\": 0.5, \"n\": 12}}");

  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/quality_summary.py") + " " + q +
                     " sbtrec text_only");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| sbtrec | 12 | 1.0000 [0.758, 1.000]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("wins 11, loses 0 (p = 0.00098) | wins 11, loses 0 (p = 0.00098)"), std::string::npos)
      << r.output;

  r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/behaviour_signal_summary.py") + " " + b +
                " sbtrec text_only");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| sbtrec (n 12 / 12) | 1.000 [0.76, 1.00]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("+11 / -0, p = 0.00098 | +11 / -0, p = 0.00098"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| 0.000, +9.00 |"), std::string::npos) << "reliance: " << r.output;

  // scripts/behaviour_hypotheses_summary.py: each run against `shipped`, from the run's own
  // predictions.jsonl (training evaluated by likelihood).
  const std::string h = dir / "hyp";
  for (const auto& [run, hits] : std::vector<std::pair<std::string, int>>{{"shipped", 12}, {"palette_off", 1}}) {
    std::filesystem::create_directories(h + "/" + run);
    std::string lik;
    for (int i = 0; i < 12; ++i)
      lik += "{\"rank\": " + std::to_string(i < hits ? 0 : 7) + ", \"rank_tokens_permuted\": 9}\n";
    test::write_text(h + "/" + run + "/predictions.jsonl", lik);
    test::write_text(h + "/" + run + ".json", "{\"first_loss\": 2.0, \"last_loss\": 1.0, \"seconds\": 120}");
  }
  r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/behaviour_hypotheses_summary.py") + " " + h +
                " shipped palette_off");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| shipped | 12 | 1.000 [0.76, 1.00] |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| palette_off | 12 | 0.083 [0.01, 0.35] |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("+0 / -11, p = 0.00098"), std::string::npos) << r.output;
}
