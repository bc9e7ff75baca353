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

// scripts/paired_runs.py: two variants' runs of two seeds pooled case by case. Seed 1: B gains cases 0-3;
// seed 2: B gains 0-1 and loses 2 (and ranks move accordingly): 6 gained, 1 lost, exact McNemar p =
// 2 * P(X <= 1 | n 7) = 16 / 128 = 0.125; ranks: every changed case moves by 7, so Wilcoxon's p is scipy's.
TEST(SummaryScripts, PairedRunsPoolsSeedsCaseByCase) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  auto write = [&](const std::string& name, const std::vector<int>& hits) {
    std::string text;
    for (size_t i = 0; i < hits.size(); ++i)
      text += "{\"case\": " + std::to_string(i) + ", \"hit\": " + (hits[i] ? "true" : "false") +
              ", \"valid\": true, \"rank\": " + std::to_string(hits[i] ? 0 : 7) + "}\n";
    test::write_text(dir / name, text);
    return std::string(dir / name);
  };
  const std::vector<int> a1 = {0, 0, 0, 0, 1, 0, 1, 0}, b1 = {1, 1, 1, 1, 1, 0, 1, 0};
  const std::vector<int> a2 = {0, 0, 1, 0, 0, 1, 0, 0}, b2 = {1, 1, 0, 0, 0, 1, 0, 0};
  auto r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/paired_runs.py") + " " + write("a1", a1) +
                     "," + write("a2", a2) + " " + write("b1", b1) + "," + write("b2", b2) + " --names sft sdpo");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pooled (16 cases): sft 0.250 -> sdpo 0.562; hits gained 6, lost 1; exact McNemar p 0.1250"),
            std::string::npos) << r.output;
  const auto scipy = test::run(std::string(SBTREC_PYTHON) +
                               " -c \"from scipy.stats import wilcoxon; a=[7,7,7,7,0,7,0,7,7,7,0,7,7,0,7,7];"
                               " b=[0,0,0,0,0,7,0,7,0,0,7,7,7,0,7,7]; print('%.4f' % wilcoxon(a, b).pvalue)\"");
  ASSERT_EQ(scipy.exit_code, 0) << scipy.output;
  EXPECT_NE(r.output.find("target's mean rank 5.25 -> 3.06; Wilcoxon signed-rank p " + scipy.output.substr(0, 6)),
            std::string::npos) << r.output << scipy.output;
  r = test::run(std::string(SBTREC_PYTHON) + " " + test::source("scripts/paired_runs.py") + " " + (dir / "a1") + " " +
                (dir / "b1") + "," + (dir / "b2"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("1 files for A but 2 for B"), std::string::npos) << r.output;
}

// sbtrec-study's report (scripts/study_report.py) equals scipy / statsmodels computed here, apart from
// the report, on the per-seed values it prints and on the per-case values of the runs: three variants x
// three seeds x 40 cases, a generation pass (hits, valid outputs) and a likelihood pass (ranks), one run
// missing. A study without its reference among the variants is refused, naming the key.
TEST(StudyReport, EqualsScipyOnThePrintedPerSeedAndPerCaseValues) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_python(dir, R"PY(
import json, math, os, subprocess, sys
import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
d, script = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
variants, seeds = ["sbtrec", "text_only", "shuffled"], [1, 2, 3]
study = {"name": "t", "reference": "sbtrec", "variants": variants, "seeds": seeds,
         "passes": [{"name": "test_generation", "predictions": "predictions.jsonl"},
                    {"name": "test_likelihood", "predictions": "predictions_test_likelihood.jsonl"}]}
os.makedirs(d, exist_ok=True)
json.dump(study, open(os.path.join(d, "study.json"), "w"))
skill = {"sbtrec": 0.6, "text_only": 0.2, "shuffled": 0.25}
for v in variants:
    for k in seeds:
        run = os.path.join(d, v, f"seed{k}")
        os.makedirs(run)
        with open(os.path.join(run, "predictions_test_likelihood.jsonl"), "w") as f:
            for c in range(40):
                rank = 0 if rng.random() < skill[v] else int(rng.integers(1, 20))
                f.write(json.dumps({"target": c, "rank": rank}) + "\n")
        if (v, k) == ("shuffled", 3):
            continue  # a missing run
        with open(os.path.join(run, "predictions.jsonl"), "w") as f:
            for c in range(40):
                valid = bool(rng.random() < 0.9)
                f.write(json.dumps({"target": c, "hit": bool(valid and rng.random() < skill[v]), "valid": valid}) + "\n")
out = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
res = json.load(open(os.path.join(d, "results.json")))
def cases(v, k, f):
    return [json.loads(l) for l in open(os.path.join(d, v, f"seed{k}", f))]
def close(a, b):
    a = math.nan if a is None else a
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12 * max(1, abs(b)), (a, b)
for p in study["passes"]:
    r = res["passes"][p["name"]]
    have = lambda v: [k for k in seeds if os.path.exists(os.path.join(d, v, f"seed{k}", p["predictions"]))]
    assert r["missing"] == ([] if p["name"] == "test_likelihood" else ["shuffled/seed3"]), r["missing"]
    pvals = {}
    for v in variants:
        e = r["variants"][v]
        assert e["seeds"] == have(v)
        hr = [np.mean([c.get("hit", c.get("rank") == 0) for c in cases(v, k, p["predictions"])]) for k in have(v)]
        m = e["metrics"]["hr@1"]
        for a, b in zip(m["values"], hr): close(a, b)
        vals = np.array(m["values"])  # the printed per-seed values
        close(m["mean"], float(vals.mean()))
        close(m["sd"], float(vals.std(ddof=1)))
        lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
        close(m["ci95"][0], lo); close(m["ci95"][1], hi)
        if v == "sbtrec":
            continue
        both = [k for k in have(v) if k in have("sbtrec")]
        ref = r["variants"]["sbtrec"]["metrics"]["hr@1"]["values"]
        refk = dict(zip(r["variants"]["sbtrec"]["seeds"], ref))
        t = stats.ttest_rel([dict(zip(e["seeds"], m["values"]))[k] for k in both], [refk[k] for k in both])
        vs = e["vs_reference"]
        close(vs["paired_t_hr@1"]["p"], t.pvalue)
        a = [c.get("hit", c.get("rank") == 0) for k in both for c in cases(v, k, p["predictions"])]
        b = [c.get("hit", c.get("rank") == 0) for k in both for c in cases("sbtrec", k, p["predictions"])]
        wins = sum(x and not y for x, y in zip(a, b)); losses = sum(y and not x for x, y in zip(a, b))
        assert (vs["mcnemar_hr@1"]["wins"], vs["mcnemar_hr@1"]["losses"]) == (wins, losses)
        close(vs["mcnemar_hr@1"]["p"], stats.binomtest(wins, wins + losses).pvalue)
        pvals.setdefault("mcnemar_hr@1", {})[v] = vs["mcnemar_hr@1"]["p"]
        pvals.setdefault("paired_t_hr@1", {})[v] = vs["paired_t_hr@1"]["p"]
        if p["name"] == "test_likelihood":
            ra = [c["rank"] for k in both for c in cases(v, k, p["predictions"])]
            rb = [c["rank"] for k in both for c in cases("sbtrec", k, p["predictions"])]
            close(vs["wilcoxon_rank"]["p"], stats.wilcoxon(ra, rb).pvalue)
            pvals.setdefault("wilcoxon_rank", {})[v] = vs["wilcoxon_rank"]["p"]
        else:
            assert "wilcoxon_rank" not in vs
    for key, ps in pvals.items():
        adj = multipletests(list(ps.values()), method="holm")[1]
        for v, q in zip(ps, adj):
            close(r["variants"][v]["vs_reference"][key]["p_holm"], q)
for f in ("results.md", "results.csv"):
    assert os.path.getsize(os.path.join(d, f)) > 0, f
study["reference"] = "sasrec"
json.dump(study, open(os.path.join(d, "study.json"), "w"))
bad = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
assert bad.returncode == 1 and "reference 'sasrec'" in bad.stderr, bad.stderr
print("ok")
)PY",
                                  (dir / "study") + " " + test::source("scripts/study_report.py"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

// The report's figures and noise drops (scripts/study_report.py): three variants (quantizer.levels 3, 1
// and 4; one trained two-stage) x two seeds x 60 cases, a clean generation pass and a noisy one, training
// records at four steps. Every listed figure is a PNG, among them the composite against quantizer.levels
// (and train.lr, the other numeric key that differs; seed and output_dir are not plotted); the drops of
// HR@1 from the clean to the noisy pass equal numpy / scipy computed here (mean and t interval, paired t,
// exact McNemar of noisy against clean hits, Holm). Noisy files shorter than their clean ones are refused,
// naming both files.
TEST(StudyReport, DrawsTheFiguresAndTheNoiseDrops) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_python(dir, R"PY(
import json, math, os, subprocess, sys
import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
d, script = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(11)
variants, seeds = ["sbtrec", "levels_1", "levels_4"], [1, 2]
levels = {"sbtrec": 3, "levels_1": 1, "levels_4": 4}
noise = {"kind": "random", "count": 2, "position": "end"}
study = {"name": "figs", "reference": "sbtrec", "variants": variants, "seeds": seeds,
         "passes": [{"name": "test_generation", "split": "test", "evaluator": "generation",
                     "predictions": "predictions_test_generation.jsonl"},
                    {"name": "test_generation_noise", "split": "test", "evaluator": "generation",
                     "predictions": "predictions_test_generation_noise.jsonl", "noise": noise}]}
os.makedirs(d, exist_ok=True)
json.dump(study, open(os.path.join(d, "study.json"), "w"))
skill = {"sbtrec": 0.6, "levels_1": 0.3, "levels_4": 0.45}
for v in variants:
    for k in seeds:
        run = os.path.join(d, v, f"seed{k}")
        os.makedirs(run)
        paradigm = "two_stage" if v == "levels_4" else "single_stage"
        with open(os.path.join(run, "config.yaml"), "w") as f:  # seed and output_dir differ, but are not plotted
            f.write(f"seed: {k + 10 * variants.index(v)}\noutput_dir: \"{run}\"\ndata:\n  root: \"/d\"\n"
                    f"quantizer:\n  levels: {levels[v]}\n  codes: 128\n  codebooks: \"\"\n"
                    f"train:\n  paradigm: {paradigm}\n  lr: {0.001 if v == 'sbtrec' else 0.002}\n"
                    + ("" if v == "levels_4" else f"  warmup: {levels[v]}\n"))
        with open(os.path.join(run, "metrics.jsonl"), "w") as f:
            for step in (10, 20, 30, 40):
                f.write(json.dumps({"split": "train", "step": step, "epoch": 1, "loss": 2.0 / step + rng.random()}) + "\n")
                f.write(json.dumps({"split": "val_curve", "step": step, "hr@1": rng.random(), "hr@5": 1.0,
                                    "valid_ratio": 1, "n": 20}) + "\n")
                if step % 20 == 0:
                    f.write(json.dumps({"split": "val", "step": step, "epoch": 1, "hr@1": rng.random(),
                                        "valid_ratio": rng.random(), "n": 20}) + "\n")
        clean, noisy = [], []
        for c in range(60):
            valid = bool(rng.random() < 0.9)
            hit = bool(valid and rng.random() < skill[v])
            clean.append({"target": c, "hit": hit, "valid": valid})
            # noise mostly destroys hits, sometimes makes one
            noisy.append({"target": c, "hit": bool(hit and rng.random() < 0.6 or not hit and rng.random() < 0.1),
                          "valid": valid})
        for name, rows in (("predictions_test_generation.jsonl", clean),
                           ("predictions_test_generation_noise.jsonl", noisy)):
            with open(os.path.join(run, name), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        # seed 2 of levels_4 from another build (a study resumed on a rebuilt binary)
        sha = "bbbbbbbbbbbb" if (v, k) == ("levels_4", 2) else "aaaaaaaaaaaa"
        json.dump({"build": {"library_sha256": sha}}, open(os.path.join(run, "results.json"), "w"))
out = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
res = json.load(open(os.path.join(d, "results.json")))
figs = res["figures"]
for f in figs:
    with open(os.path.join(d, f), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n", f
for p in ("test_generation", "test_generation_noise"):
    for f in (f"figures/fig2_{p}.png", f"figures/composite_vs_quantizer.levels_{p}.png"):
        assert f in figs, (f, figs)
for f in ("figures/validation_composite.png", "figures/learning_curves.png"):
    assert f in figs, (f, figs)
# the numeric keys that differ between the variants: quantizer.levels and train.lr (seed and output_dir
# are skipped, train.paradigm is a string, quantizer.codes the same everywhere, train.warmup in 2 variants)
assert sorted(f for f in figs if "composite_vs_" in f) == sorted(
    [f"figures/composite_vs_{k}_{p}.png" for k in ("quantizer.levels", "train.lr")
     for p in ("test_generation", "test_generation_noise")]), figs
md = open(os.path.join(d, "results.md")).read()
assert "## Noise: test_generation_noise" in md and "](figures/fig2_test_generation.png)" in md, md
assert res["builds"] == {"aaaaaaaaaaaa": [f"{v}/seed{k}" for v in variants for k in seeds if (v, k) != ("levels_4", 2)],
                         "bbbbbbbbbbbb": ["levels_4/seed2"]}, res["builds"]
assert "Runs come from more than one build" in md and "`bbbbbbbbbbbb`: levels_4/seed2" in md, md
def cases(v, k, f):
    return [json.loads(l)["hit"] for l in open(os.path.join(d, v, f"seed{k}", f))]
def close(a, b):
    a = math.nan if a is None else a
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12 * max(1, abs(b)), (a, b)
r = res["passes"]["test_generation_noise"]
assert r["clean_pass"] == "test_generation", r.get("clean_pass")
assert "vs_clean" not in res["passes"]["test_generation"]["variants"]["sbtrec"]
pvals = {"paired_t": [], "mcnemar": []}
for v in variants:
    vc = r["variants"][v]["vs_clean"]
    hc = [np.mean(cases(v, k, "predictions_test_generation.jsonl")) for k in seeds]
    hn = [np.mean(cases(v, k, "predictions_test_generation_noise.jsonl")) for k in seeds]
    close(vc["hr@1_clean"]["mean"], float(np.mean(hc)))
    close(vc["hr@1_noisy"]["mean"], float(np.mean(hn)))
    drop = np.subtract(hc, hn)
    close(vc["drop"]["mean"], float(drop.mean()))
    for a, b in zip(vc["drop"]["values"], drop): close(a, b)
    lo, hi = stats.t.interval(0.95, len(drop) - 1, loc=drop.mean(), scale=stats.sem(drop))
    close(vc["drop"]["ci95"][0], lo); close(vc["drop"]["ci95"][1], hi)
    close(vc["paired_t"]["p"], stats.ttest_rel(hc, hn).pvalue)
    a = [h for k in seeds for h in cases(v, k, "predictions_test_generation_noise.jsonl")]
    b = [h for k in seeds for h in cases(v, k, "predictions_test_generation.jsonl")]
    wins = sum(x and not y for x, y in zip(a, b)); losses = sum(y and not x for x, y in zip(a, b))
    assert (vc["mcnemar"]["cases"], vc["mcnemar"]["wins"], vc["mcnemar"]["losses"]) == (len(a), wins, losses), vc
    close(vc["mcnemar"]["p"], stats.binomtest(wins, wins + losses).pvalue)
    pvals["paired_t"].append(vc["paired_t"]["p"]); pvals["mcnemar"].append(vc["mcnemar"]["p"])
for key, ps in pvals.items():
    for v, q in zip(variants, multipletests(ps, method="holm")[1]):
        close(r["variants"][v]["vs_clean"][key]["p_holm"], q)
rows = [l.split(",") for l in open(os.path.join(d, "results.csv")).read().splitlines()]
drops = {row[1]: float(row[4]) for row in rows if row[0] == "test_generation_noise" and row[2] == "hr@1_drop"}
for v in variants:
    close(drops[v], r["variants"][v]["vs_clean"]["drop"]["mean"])
# noisy files shorter than their clean ones (in every variant, so they agree with each other) are refused,
# naming both files of the first variant
for v in variants:
    short = os.path.join(d, v, "seed2", "predictions_test_generation_noise.jsonl")
    lines = open(short).readlines()
    open(short, "w").writelines(lines[:-1])
bad = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
run = os.path.join(d, "sbtrec", "seed2")
assert bad.returncode != 0 and os.path.join(run, "predictions_test_generation_noise.jsonl") in bad.stderr and \
    os.path.join(run, "predictions_test_generation.jsonl") in bad.stderr, bad.stderr
print("ok")
)PY",
                                  (dir / "study") + " " + test::source("scripts/study_report.py"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

// scripts/modality_gap.py (Fig. 3 and the gap numbers): on tokens that sit on their titles the sets mix
// and each token finds its own title; on tokens shifted off them the sets separate; every number equals
// a brute-force numpy recomputation, and the figure is a PNG.
TEST(ModalityGap, NumbersEqualBruteForceAndSeparatedSetsDoNotMix) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_python(dir, R"PY(
import json, os, subprocess, sys
import numpy as np
from safetensors.numpy import save_file
d, script = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(3)
titles = rng.normal(size=(300, 16)).astype(np.float32)
near = titles + 0.05 * rng.normal(size=titles.shape).astype(np.float32)
far = rng.normal(size=titles.shape).astype(np.float32) * 0.2 + 3.0
os.makedirs(d, exist_ok=True)
save_file({"item_tokens": near, "title_embeddings": titles}, os.path.join(d, "mlp.safetensors"))
save_file({"item_tokens": far, "title_embeddings": titles}, os.path.join(d, "linear.safetensors"))
out = subprocess.run([sys.executable, script, "--run", "mlp=" + os.path.join(d, "mlp.safetensors"),
                      "--run", "linear=" + os.path.join(d, "linear.safetensors"), "--out", os.path.join(d, "o"),
                      "--items", "200", "--k", "5"], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
res = json.load(open(os.path.join(d, "o", "modality_gap.json")))
sel = np.sort(np.random.default_rng(0).choice(300, size=200, replace=False))
def unit(x):
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
for name, tok in (("mlp", near), ("linear", far)):
    x, y = unit(tok[sel]), unit(titles[sel])
    both = np.concatenate([x, y])
    dist = 1 - both @ both.T
    np.fill_diagonal(dist, np.inf)
    nbr = np.argsort(dist, axis=1)[:, :5]
    side = np.repeat([0, 1], 200)
    cross = (side[nbr] != side[:, None]).mean()
    r = res["runs"][name]
    assert abs(r["knn_mixing"] - cross / (200 / 399)) < 1e-12, (name, r, cross)
    assert abs(r["centroid_gap"] - np.linalg.norm(x.mean(0) - y.mean(0))) < 1e-9
    assert abs(r["own_title_cosine"] - np.mean(np.sum(x * y, 1))) < 1e-9
    assert r["own_title_hr@1"] == np.mean((x @ y.T).argmax(1) == np.arange(200))
assert res["runs"]["mlp"]["knn_mixing"] > 0.5 and res["runs"]["mlp"]["own_title_hr@1"] > 0.95, res
assert res["runs"]["linear"]["knn_mixing"] < 0.05 and res["runs"]["linear"]["centroid_gap"] > 0.5, res
assert open(os.path.join(d, "o", "fig3_tsne.png"), "rb").read(4) == b"\x89PNG"
bad = subprocess.run([sys.executable, script, "--run", "x=" + os.path.join(d, "nowhere.safetensors"), "--out", d],
                     capture_output=True, text=True)
assert bad.returncode != 0 and "nowhere.safetensors does not exist" in bad.stderr, bad.stderr
print("ok")
)PY", "'" + (dir / "w") + "' " + test::source("scripts/modality_gap.py"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

// scripts/study_cases.py (`sbtrec-study cases DIR`, the paper's Table 2): only the cases where the
// variants disagree, the reference-right ones first, history titles with the dataset's genres (u.item's
// flags), the items a noisy pass injected marked, each variant's output, the target.
TEST(StudyCases, ListsDisagreementsWithGenresAndInjectedItems) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_python(dir, R"PY(
import json, os, subprocess, sys
d, script = sys.argv[1], sys.argv[2]
data = os.path.join(d, "data")
os.makedirs(data)
flags = lambda gs: "|".join("1" if k in gs else "0" for k in range(19))
with open(os.path.join(data, "u.item"), "w", encoding="latin-1") as f:
    for i in range(1, 9):
        f.write(f"{i}|Movie {i} (1999)|01-Jan-1999||http://x|{flags({15} if i < 5 else {3, 4})}\n")
study = {"name": "t", "reference": "sbtrec", "variants": ["sbtrec", "llara"], "seeds": [1],
         "passes": [{"name": "test_generation", "split": "test", "evaluator": "generation",
                     "predictions": "predictions_test_generation.jsonl"},
                    {"name": "test_generation_noise_off_genre_1_end", "split": "test", "evaluator": "generation",
                     "predictions": "predictions_test_generation_noise_off_genre_1_end.jsonl",
                     "noise": {"kind": "off_genre", "count": 1, "position": "end"}}]}
json.dump(study, open(os.path.join(d, "study.json"), "w"))
def rec(c, hist, hit, out):
    return {"case": c, "history": hist, "history_titles": [f"Movie {h} (1999)" for h in hist], "target": 3,
            "target_title": "Movie 3 (1999)", "hit": hit, "valid": True, "output": out}
hits = {"sbtrec": [True, True, False, True], "llara": [True, False, True, False]}
noisy_hits = {"sbtrec": [True, True, True, True], "llara": [False, False, True, False]}
for v in study["variants"]:
    run = os.path.join(d, v, "seed1")
    os.makedirs(run)
    open(os.path.join(run, "config.yaml"), "w").write(f"data:\n  format: grouplens\n  root: {data}\n")
    with open(os.path.join(run, study["passes"][0]["predictions"]), "w") as f:
        for c in range(4):
            f.write(json.dumps(rec(c, [1, 2], hits[v][c], v + " says " + str(c))) + "\n")
    with open(os.path.join(run, study["passes"][1]["predictions"]), "w") as f:
        for c in range(4):
            f.write(json.dumps(rec(c, [2, 7], noisy_hits[v][c], v + " noisy " + str(c))) + "\n")
out = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
res = json.load(open(os.path.join(d, "cases.json")))
clean = res["passes"]["test_generation"]
assert clean["disagreements"] == 3 and clean["cases"] == 4, clean
assert [c["case"] for c in clean["shown"]] == [1, 3, 2], clean["shown"]  # reference right first
first = clean["shown"][0]
assert first["history"][0]["genres"] == ["Sci-Fi"] and not first["history"][0]["injected"], first
assert first["outputs"]["llara"] == {"output": "llara says 1", "hit": False}
assert first["target"]["title"] == "Movie 3 (1999)"
noisy = res["passes"]["test_generation_noise_off_genre_1_end"]
assert noisy["disagreements"] == 3, noisy
h = noisy["shown"][0]["history"]
assert [x["injected"] for x in h] == [False, True] and h[1]["genres"] == ["Animation", "Children's"], h
md = open(os.path.join(d, "cases.md")).read()
assert "+Movie 7 (1999) [Animation, Children's]" in md and "✗ llara says 1" in md, md
bad = subprocess.run([sys.executable, script, d, "--seed", "9"], capture_output=True, text=True)
assert bad.returncode == 1 and "the study's seeds are [1]" in bad.stderr
print("ok")
)PY", "'" + (dir / "w") + "' " + test::source("scripts/study_cases.py"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

// scripts/balanced_level.py (issue 24 §3, LC-Rec's balanced last level measured): 4 identical items, 2 levels
// x 2 codes, all on tuple (0, 0) with an exact reconstruction; under capacity ceil(4 / 2) = 2 two of them
// move to the last level's other code (0.1 away): collision rate 0.75 -> 0.5, largest tuple 4 -> 2,
// perplexity 1 -> 2, relative error 0 -> sqrt(2 x 0.01) / sqrt(4); a fit with collisions index is refused.
TEST(BalancedLevel, CapacityAssignmentSplitsIdenticalItemsAndReportsTheCost) {
  SBTREC_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_python(dir, R"PY(
import json, math, os, subprocess, sys
import numpy as np
from safetensors.numpy import save_file
d, script = sys.argv[1], sys.argv[2]
q, enc = os.path.join(d, "q"), os.path.join(d, "enc")
os.makedirs(q); os.makedirs(enc)
cb = np.array([[[1, 0], [-1, 0]], [[0, 0], [0.1, 0]]], dtype=np.float32)  # [L 2, K 2, D 2]
save_file({"codebooks": cb}, os.path.join(q, "codebooks.safetensors"))
save_file({"item_codes": np.zeros((4, 2), dtype=np.int64)}, os.path.join(q, "codes.safetensors"))
save_file({"item_embeddings.weight": np.array([[1, 0]] * 4 + [[5, 5]], dtype=np.float32)},
          os.path.join(enc, "model.safetensors"))
stats = {"collisions": "keep", "item_rows": "input", "normalize": False,
         "items": {"quantizer": {"collision_rate": 0.75, "largest_shared_tuple": 4, "relative_error": 0.0,
                                 "levels": [{"perplexity": 1.0}, {"perplexity": 1.0}]}}}
json.dump(stats, open(os.path.join(q, "stats.json"), "w"))
out = subprocess.run([sys.executable, script, q, enc, "--json", os.path.join(d, "b.json")], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
assert "| balanced last level (capacity 2) | 0.5000 | 2 | 4 | 2.00 |" in out.stdout, out.stdout
res = json.load(open(os.path.join(d, "b.json")))
f, b = res["fitted"], res["balanced"]
assert res["capacity"] == 2
assert (f["collision_rate"], f["largest_shared_tuple"], f["last_level_moved"]) == (0.75, 4, 0) and f["relative_error"] == 0, f
assert abs(f["last_level_perplexity"] - 1) < 1e-12, f
assert (b["collision_rate"], b["largest_shared_tuple"], b["items_sharing_a_tuple"], b["last_level_moved"]) == (0.5, 2, 4, 2), b
assert abs(b["last_level_perplexity"] - 2) < 1e-9 and abs(b["relative_error"] - math.sqrt(0.02) / 2) < 1e-7, b
stats["collisions"] = "index"
json.dump(stats, open(os.path.join(q, "stats.json"), "w"))
bad = subprocess.run([sys.executable, script, q, enc], capture_output=True, text=True)
assert bad.returncode != 0 and "collisions keep" in bad.stderr, bad.stderr
bad = subprocess.run([sys.executable, script, q, os.path.join(d, "nowhere")], capture_output=True, text=True)
assert bad.returncode != 0 and "nowhere/model.safetensors does not exist" in bad.stderr, bad.stderr
print("ok")
)PY", "'" + (dir / "w") + "' " + test::source("scripts/balanced_level.py"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}
