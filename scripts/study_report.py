#!/usr/bin/env python3
"""The report of a study (`sbtrec-study report DIR`, issue 23): per variant, evaluation pass and metric
the mean, standard deviation, 95% t interval and per-seed values; against the reference variant the
paired t-test over seeds (the paper's test), and per-case paired tests pooled over seeds (the exact
McNemar test on HR@1 hits, the Wilcoxon signed-rank test on the target's rank where the pass ranks
candidates by likelihood), each with Holm's correction across the variants. Statistics are scipy's and
statsmodels' (Holm). Writes DIR/results.json, DIR/results.csv and DIR/results.md.

The study directory holds study.json and one ordinary run directory per variant and seed:
  study.json  {"name": ..., "reference": VARIANT, "variants": [VARIANT, ...], "seeds": [K, ...],
               "passes": [{"name": PASS, "predictions": FILE, ...}, ...]}
  VARIANT/seedK/FILE  the pass's per-case predictions (JSON lines: "hit" or "rank", optional "valid",
                      "target"), as sbtrec-train / sbtrec-eval write them.
A run without a pass's file is left out of that pass (listed under "missing").

Usage: study_report.py DIR
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_stats import jsonl, mcnemar  # noqa: E402
from sbtrec_io import atomic_write_text  # noqa: E402

METRICS = ("hr@1", "valid_ratio", "composite")


def case_values(records):
    """Per case: the HR@1 hit, whether the output is valid, and the target's rank (None without one)."""
    hits = [bool(r["hit"]) if "hit" in r else r["rank"] == 0 for r in records]
    valid = [bool(r.get("valid", True)) for r in records]
    ranks = [r.get("rank") for r in records]
    return hits, valid, ranks


def run_metrics(hits, valid):
    n = len(hits)
    hr = sum(hits) / n if n else math.nan
    vr = sum(valid) / n if n else math.nan
    return {"n": n, "hr@1": hr, "valid_ratio": vr, "composite": hr * vr}


def summary(values):
    """Mean, sample standard deviation and 95% t interval of per-seed values (nan where undefined)."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean()) if a.size else math.nan
    if a.size < 2:
        return {"values": list(values), "mean": mean, "sd": math.nan, "ci95": [math.nan, math.nan]}
    sd = float(a.std(ddof=1))
    lo, hi = stats.t.interval(0.95, a.size - 1, loc=mean, scale=sd / math.sqrt(a.size)) if sd > 0 else (mean, mean)
    return {"values": list(values), "mean": mean, "sd": sd, "ci95": [float(lo), float(hi)]}


def paired_t(a, b):
    if len(a) < 2 or np.allclose(np.subtract(a, b), np.subtract(a, b)[0]):
        return {"seeds": len(a), "t": math.nan, "p": math.nan}  # undefined: fewer than 2 seeds or a constant difference
    res = stats.ttest_rel(a, b)
    return {"seeds": len(a), "t": float(res.statistic), "p": float(res.pvalue)}


def wilcoxon(a, b):
    d = [x - y for x, y in zip(a, b)]
    if not d or all(x == 0 for x in d):
        return {"pairs": len(d), "statistic": math.nan, "p": 1.0 if d else math.nan}
    res = stats.wilcoxon(a, b)
    return {"pairs": len(d), "statistic": float(res.statistic), "p": float(res.pvalue)}


def holm(results, key):
    """Adds p_holm to results[v][key] over the variants whose p is defined."""
    names = [v for v in results if key in results[v] and not math.isnan(results[v][key]["p"])]
    if names:
        adjusted = multipletests([results[v][key]["p"] for v in names], method="holm")[1]
        for v, p in zip(names, adjusted):
            results[v][key]["p_holm"] = float(p)


def report_pass(study_dir, study, p):
    ref = study["reference"]
    runs, missing = {}, []
    for v in study["variants"]:
        for k in study["seeds"]:
            path = os.path.join(study_dir, v, f"seed{k}", p["predictions"])
            if os.path.exists(path):
                runs[(v, k)] = case_values(jsonl(path))
            else:
                missing.append(f"{v}/seed{k}")
    metrics = {key: run_metrics(hits, valid) for key, (hits, valid, _) in runs.items()}
    out = {"missing": missing, "variants": {}}
    for v in study["variants"]:
        seeds = [k for k in study["seeds"] if (v, k) in runs]
        entry = {"seeds": seeds, "n": [metrics[(v, k)]["n"] for k in seeds],
                 "metrics": {m: summary([metrics[(v, k)][m] for k in seeds]) for m in METRICS}}
        if v != ref:
            both = [k for k in seeds if (ref, k) in runs]
            for k in both:
                if len(runs[(v, k)][0]) != len(runs[(ref, k)][0]):
                    raise SystemExit(f"error: {v}/seed{k} and {ref}/seed{k} have different cases in {p['predictions']}")
            vs = {"paired_t_hr@1": paired_t([metrics[(v, k)]["hr@1"] for k in both],
                                            [metrics[(ref, k)]["hr@1"] for k in both])}
            a = [h for k in both for h in runs[(v, k)][0]]
            b = [h for k in both for h in runs[(ref, k)][0]]
            wins, losses, pm = mcnemar(a, b)
            vs["mcnemar_hr@1"] = {"cases": len(a), "wins": wins, "losses": losses, "p": pm}
            ra = [r for k in both for r in runs[(v, k)][2]]
            rb = [r for k in both for r in runs[(ref, k)][2]]
            if ra and all(r is not None for r in ra + rb):
                vs["wilcoxon_rank"] = wilcoxon(ra, rb)
            entry["vs_reference"] = vs
        out["variants"][v] = entry
    tests = {v: e["vs_reference"] for v, e in out["variants"].items() if "vs_reference" in e}
    for key in ("paired_t_hr@1", "mcnemar_hr@1", "wilcoxon_rank"):
        holm(tests, key)
    return out


def fmt(x, digits=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_pvalue(p):
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.4f}"


def fmt_p(t):
    if t is None:
        return "n/a"
    return f"p {fmt_pvalue(t['p'])} (Holm {fmt_pvalue(t.get('p_holm', math.nan))})"


def no_nan(x):
    """JSON has no NaN: undefined figures are written as null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [no_nan(v) for v in x]
    return x


def markdown(study, res):
    lines = [f"# Study {study.get('name', '')}: results", "",
             f"Reference variant: `{study['reference']}`; seeds {study['seeds']}. Mean, sd and 95% t interval "
             "over seeds; tests against the reference: paired t over seeds, exact McNemar on HR@1 hits and "
             "Wilcoxon signed-rank on the target's rank, both over all cases of all seeds; p with Holm's "
             "correction across variants.", ""]
    for name, r in res["passes"].items():
        lines += [f"## {name}", ""]
        if r["missing"]:
            lines += [f"Missing runs: {', '.join(r['missing'])}", ""]
        lines += ["| variant | seeds | HR@1 mean ± sd [95% CI] | ValidRatio | per-seed HR@1 | paired t | McNemar (wins/losses) | Wilcoxon rank |",
                  "|---|---|---|---|---|---|---|---|"]
        for v, e in r["variants"].items():
            h, vr = e["metrics"]["hr@1"], e["metrics"]["valid_ratio"]
            vs = e.get("vs_reference", {})
            mc = vs.get("mcnemar_hr@1")
            lines.append(
                f"| {v} | {len(e['seeds'])} | {fmt(h['mean'])} ± {fmt(h['sd'])} [{fmt(h['ci95'][0])}, {fmt(h['ci95'][1])}] | "
                f"{fmt(vr['mean'])} | {', '.join(fmt(x) for x in h['values'])} | {fmt_p(vs.get('paired_t_hr@1'))} | "
                + (f"{mc['wins']}/{mc['losses']}, {fmt_p(mc)}" if mc else "reference") + " | "
                + fmt_p(vs.get("wilcoxon_rank")) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("Usage: ")[1].strip(), file=sys.stderr)
        return 2
    study_dir = argv[1]
    path = os.path.join(study_dir, "study.json")
    if not os.path.exists(path):
        print(f"error: {path} not found (sbtrec-study run writes it)", file=sys.stderr)
        return 1
    with open(path, encoding="utf-8") as f:
        study = json.load(f)
    for key in ("reference", "variants", "seeds", "passes"):
        if key not in study:
            print(f"error: {path}: key '{key}' is missing", file=sys.stderr)
            return 1
    if study["reference"] not in study["variants"]:
        print(f"error: {path}: reference '{study['reference']}' is not one of the variants", file=sys.stderr)
        return 1
    res = {"study": study.get("name", ""), "reference": study["reference"],
           "passes": {p["name"]: report_pass(study_dir, study, p) for p in study["passes"]}}
    atomic_write_text(os.path.join(study_dir, "results.json"), json.dumps(no_nan(res), indent=2, allow_nan=False) + "\n")
    rows = [["pass", "variant", "metric", "seeds", "mean", "sd", "ci95_low", "ci95_high", "per_seed"]]
    for name, r in res["passes"].items():
        for v, e in r["variants"].items():
            for m, s in e["metrics"].items():
                rows.append([name, v, m, len(e["seeds"]), s["mean"], s["sd"], s["ci95"][0], s["ci95"][1],
                             " ".join(repr(x) for x in s["values"])])
    tmp = os.path.join(study_dir, "results.csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, os.path.join(study_dir, "results.csv"))
    md = markdown(study, res)
    atomic_write_text(os.path.join(study_dir, "results.md"), md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
