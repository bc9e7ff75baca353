// The method learns from behaviour (issue 21), the suite's slow proof (label `slow`, two cores): on
// the behaviour-signal data (behaviour_fixture.h: titles say nothing, rings of items carry the
// sequence), 24 SBS-AO steps of 4 prompts of the shipped SmolLM2 config against text-only at the same
// budget, both ranked by candidate likelihood on the same 30 test cases (the whole test split of this
// small dataset; chance: HR@1 0.05). The titles carry nothing, so only the tokens can lift SBT-Rec;
// rotating the tokens among the candidates must take most of the lift away. The two runs are
// independent processes and run at once, one thread each (ctest gives the test two processors).
#include <future>
#include <iostream>

#include "behaviour_fixture.h"

using namespace sbtrec;
using test::last_json_line;
using test::read_jsonl;

TEST(BehaviourE2E, TheTokensCarryTheBehaviourBeyondText) {
  SBTREC_REQUIRE_MODEL();
  auto& b = test::bsig();
  ASSERT_FALSE(b.data.empty());
  test::TempDir dir;
  const std::string budget =
      " --set train.max_steps=24 --set train.log_every=8 --set eval.mode=likelihood --set eval.max_cases=30"
      " --set eval.max_val_cases=2 --json";
  auto sbtrec_run = std::async(std::launch::async, test::run,
                               test::bin("sbtrec-train") + test::bsig_sets(b) + budget +
                                   " --set eval.token_reliance=true --set output_dir=" + (dir / "sbtrec"));
  const std::string text_only = "configs/movielens/ablations/sbtrec_smollm_text_only.yaml";
  auto text_run = std::async(std::launch::async, test::run,
                             test::bin("sbtrec-train") + test::bsig_sets(b, text_only) + budget +
                                 " --set output_dir=" + (dir / "text_only"));
  const auto r_sbtrec = sbtrec_run.get(), r_text = text_run.get();
  ASSERT_EQ(r_sbtrec.exit_code, 0) << r_sbtrec.output;
  ASSERT_EQ(r_text.exit_code, 0) << r_text.output;
  const auto sbt = last_json_line(r_sbtrec.output)["test"];
  const auto text = last_json_line(r_text.output)["test"];
  SCOPED_TRACE("SBT-Rec " + sbt.dump() + "\ntext-only " + text.dump());
  ASSERT_EQ(sbt["n"], 30);
  ASSERT_EQ(text["n"], 30);
  const double hr = sbt["hr@1"].get<double>(), hr_text = text["hr@1"].get<double>();
  // Paired on the same cases: hits of SBT-Rec that text-only misses, and the reverse.
  const auto a = read_jsonl(dir / "sbtrec/predictions.jsonl"), t = read_jsonl(dir / "text_only/predictions.jsonl");
  ASSERT_EQ(a.size(), t.size());
  int wins = 0, losses = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]["target"], t[i]["target"]);
    const bool x = a[i]["rank"] == 0, y = t[i]["rank"] == 0;
    wins += x && !y, losses += y && !x;
  }
  std::cout << "[ figures  ] likelihood HR@1: SBT-Rec " << hr << " (tokens rotated " << sbt["hr@1_tokens_permuted"]
            << "), text-only " << hr_text << "; paired: " << wins << " wins, " << losses << " losses (n 30)\n";
  EXPECT_GE(hr, 0.3) << "far above chance (0.05)";  // seen: 0.533 (16 / 30), text-only 0.067, rotated 0.033
  EXPECT_LE(hr_text, 0.2) << "the titles carry nothing";
  EXPECT_GE(wins - losses, 7) << "wins " << wins << ", losses " << losses;
  EXPECT_LE(sbt["hr@1_tokens_permuted"].get<double>(), hr - 0.2) << "the lift rides on the tokens";
}
