#!/usr/bin/env python3
"""The report of a study (`sbtrec-study report DIR`, issue 23): per variant, evaluation pass and metric
the mean, standard deviation, 95% t interval and per-seed values; against the reference variant the
paired t-test over seeds (the paper's test), and per-case paired tests pooled over seeds (the exact
McNemar test on HR@1 hits, the Wilcoxon signed-rank test on the target's rank where the pass ranks
candidates by likelihood), each with Holm's correction across the variants. Statistics are scipy's and
statsmodels' (Holm). Writes DIR/results.json, DIR/results.csv, DIR/results.md and DIR/figures/.

Noise drops (RQ5): a pass with a "noise" entry is compared with its clean counterpart, the first pass
with the same split and evaluator and no "noise". Per variant, over the seeds that have both (key
"vs_clean" of the noisy pass's variant in results.json, "clean_pass" names the counterpart): HR@1 clean
and noisy, the drop (clean - noisy) per seed, the paired t-test over seeds of clean against noisy HR@1,
and the exact McNemar test of the noisy hits against the clean hits over the cases of all those seeds
(paired by position: both files hold the same cases in the same order; files of different lengths are
refused), each with Holm's correction across the variants. results.md has a "Noise: PASS" table,
results.csv the rows of metric "hr@1_drop".

Figures (matplotlib, PNG, in DIR/figures/, listed in results.json under "figures" and linked from
results.md; whiskers and bands are 95% t intervals over seeds, none with one seed):
  fig2_PASS.png                  per variant (the reference first) HR@1 mean as bars, ValidRatio mean
                                 as a line on the right axis (the paper's Fig. 2);
  composite_vs_KEY_PASS.png      the composite (HR@1 x ValidRatio) against a config key (dotted, from
                                 the runs' config.yaml) that differs between the variants and is numeric
                                 for at least 3 of them (the paper's Fig. 4); not "seed", "data.root",
                                 "output_dir*", "*.codebooks", "*.checkpoint";
  validation_composite.png       hr@1 x valid_ratio of the runs' validation ("val" records of
                                 metrics.jsonl) against the step (the paper's Fig. 5), when a run has
                                 two validation points or more;
  learning_curves.png            the learning curve ("val_curve" hr@1) and the training loss ("train"
                                 loss, mean over seeds) against the step.
Names (keys, passes) are written with characters other than letters, digits, ".", "_" and "-" as "_".

The study directory holds study.json and one ordinary run directory per variant and seed:
  study.json  {"name": ..., "reference": VARIANT, "variants": [VARIANT, ...], "seeds": [K, ...],
               "passes": [{"name": PASS, "predictions": FILE, "split": ..., "evaluator": ...,
                           "noise": {"kind": ..., "count": N, "position": ...} (optional)}, ...]}
  VARIANT/seedK/FILE  the pass's per-case predictions (JSON lines: "hit" or "rank", optional "valid",
                      "target"), as sbtrec-train / sbtrec-eval write them.
  VARIANT/seedK/metrics.jsonl, config.yaml  training's records and the run's resolved config (figures).
Where the records carry their case index ("case"), every run of a pass is restricted to the cases all
of them hold (an encoder baseline ranks every test case, LLM runs may evaluate the first
eval.max_cases), so figures and tests compare the same cases.
A run without a pass's file is left out of that pass (listed under "missing"); runs without
metrics.jsonl or config.yaml are left out of the figures that need them.

Usage: study_report.py DIR
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_stats import jsonl, mcnemar, wilcoxon  # noqa: E402
from sbtrec_io import atomic_write, atomic_write_text  # noqa: E402

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


def holm(results, key):
    """Adds p_holm to results[v][key] over the variants whose p is defined."""
    names = [v for v in results if key in results[v] and not math.isnan(results[v][key]["p"])]
    if names:
        adjusted = multipletests([results[v][key]["p"] for v in names], method="holm")[1]
        for v, p in zip(names, adjusted):
            results[v][key]["p_holm"] = float(p)


def common_cases(records):
    """Restricts each run's records to the cases every run of the pass holds, in case order, when the
    records carry their case index ("case"): an encoder baseline ranks every test case while LLM runs
    may evaluate the first eval.max_cases; cases pair by index. Records without "case" stay as they are."""
    if not records or not all("case" in r for recs in records.values() for r in recs):
        return records
    common = set.intersection(*({r["case"] for r in recs} for recs in records.values()))
    return {key: sorted((r for r in recs if r["case"] in common), key=lambda r: r["case"])
            for key, recs in records.items()}


def load_runs(study_dir, study, p):
    """The per-case values of the pass's runs by (variant, seed), and the runs without its file."""
    records, missing = {}, []
    for v in study["variants"]:
        for k in study["seeds"]:
            path = os.path.join(study_dir, v, f"seed{k}", p["predictions"])
            if os.path.exists(path):
                records[(v, k)] = jsonl(path)
            else:
                missing.append(f"{v}/seed{k}")
    runs = {key: case_values(recs) for key, recs in common_cases(records).items()}
    return runs, missing


def report_pass(study_dir, study, p, loaded=None):
    ref = study["reference"]
    runs, missing = loaded if loaded is not None else load_runs(study_dir, study, p)
    metrics = {key: run_metrics(hits, valid) for key, (hits, valid, _) in runs.items()}
    out = {"missing": missing, "variants": {}}
    for v in study["variants"]:
        seeds = [k for k in study["seeds"] if (v, k) in runs]
        entry = {"seeds": seeds, "n": [metrics[(v, k)]["n"] for k in seeds],
                 "metrics": {m: summary([metrics[(v, k)][m] for k in seeds]) for m in METRICS}}
        both = [k for k in seeds if (ref, k) in runs] if v != ref else []
        if both:  # tests only where the variant and the reference share a seed
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


def clean_counterpart(study, p):
    """The clean pass of a noisy pass: the first with the same split and evaluator and no noise."""
    for q in study["passes"]:
        if "noise" not in q and q.get("split") == p.get("split") and q.get("evaluator") == p.get("evaluator"):
            return q
    return None


def noise_drops(study_dir, study, noisy, clean, noisy_runs, clean_runs):
    """Per variant (over the seeds that have both passes) the vs_clean entry of the noisy pass."""
    out = {}
    for v in study["variants"]:
        both = [k for k in study["seeds"] if (v, k) in noisy_runs and (v, k) in clean_runs]
        if not both:
            continue
        for k in both:
            if len(noisy_runs[(v, k)][0]) != len(clean_runs[(v, k)][0]):
                run = os.path.join(study_dir, v, f"seed{k}")
                raise SystemExit(f"error: {os.path.join(run, noisy['predictions'])} has "
                                 f"{len(noisy_runs[(v, k)][0])} cases and {os.path.join(run, clean['predictions'])} "
                                 f"{len(clean_runs[(v, k)][0])}: a noisy pass and its clean pass must hold the "
                                 "same cases in the same order")
        hc = [run_metrics(*clean_runs[(v, k)][:2])["hr@1"] for k in both]
        hn = [run_metrics(*noisy_runs[(v, k)][:2])["hr@1"] for k in both]
        a = [h for k in both for h in noisy_runs[(v, k)][0]]
        b = [h for k in both for h in clean_runs[(v, k)][0]]
        wins, losses, pm = mcnemar(a, b)  # wins: noisy right where clean is wrong
        out[v] = {"seeds": both, "hr@1_clean": summary(hc), "hr@1_noisy": summary(hn),
                  "drop": summary([c - n for c, n in zip(hc, hn)]), "paired_t": paired_t(hc, hn),
                  "mcnemar": {"cases": len(a), "wins": wins, "losses": losses, "p": pm}}
    for key in ("paired_t", "mcnemar"):
        holm(out, key)
    return out


# ---- figures ----

SKIP_KEYS = ("seed", "data.root")


def safe_name(s):
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(s))


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def variant_config(study_dir, study, v):
    """The dotted keys of the variant's config.yaml (the first seed's that can be read), None without one."""
    import yaml

    for k in study["seeds"]:
        path = os.path.join(study_dir, v, f"seed{k}", "config.yaml")
        if not os.path.exists(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                cfg = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            print(f"warning: {path}: {e}", file=sys.stderr)
            continue
        if isinstance(cfg, dict):
            return flatten(cfg)
    return None


def plotted_key(key):
    return not (key in SKIP_KEYS or key.startswith("output_dir") or key.endswith(".codebooks")
                or key.endswith(".checkpoint"))


def metric_records(study_dir, v, k):
    """The records of a run's metrics.jsonl ([] without one; a line being written is left out)."""
    path = os.path.join(study_dir, v, f"seed{k}", "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict):
                out.append(r)
    return out


def step_series(records, split, value):
    """{step: value(record)} of the records of a split (the last record of a step wins)."""
    out = {}
    for r in records:
        if r.get("split") != split or not is_number(r.get("step")):
            continue
        y = value(r)
        if y is not None and is_number(y):
            out[r["step"]] = float(y)
    return out


def curve(per_seed):
    """Steps, per-step summaries over the seeds that have the step, of [{step: value}, ...]."""
    steps = sorted({s for d in per_seed for s in d})
    return steps, [summary([d[s] for d in per_seed if s in d]) for s in steps]


def draw_curve(ax, steps, sums, label, color, band=True):
    means = [s["mean"] for s in sums]
    ax.plot(steps, means, marker="o" if len(steps) <= 30 else None, markersize=3, label=label, color=color)
    if band:
        lo = [s["ci95"][0] for s in sums]
        hi = [s["ci95"][1] for s in sums]
        if any(math.isfinite(x) for x in lo):
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)


def whiskers(ax, xs, sums, **kw):
    """95% t interval whiskers where they are defined (two seeds or more)."""
    for x, s in zip(xs, sums):
        lo, hi = s["ci95"]
        if math.isfinite(s["mean"]) and math.isfinite(lo) and math.isfinite(hi):
            ax.errorbar([x], [s["mean"]], yerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="none", capsize=4, **kw)


def rate_axis(ax):
    """Rates lie in [0, 1]: the axis stops a little beyond, however far a t interval of few seeds reaches."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, -0.05), min(hi, 1.05))


def figures(study_dir, study, res):
    """Writes the figures into DIR/figures/ and returns their paths relative to DIR."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    name = study.get("name", "") or os.path.basename(os.path.abspath(study_dir))
    ref = study["reference"]
    order = [ref] + [v for v in study["variants"] if v != ref]
    color = {v: f"C{i % 10}" for i, v in enumerate(order)}
    written = []

    def save(fig, file, rect=(0, 0, 1, 1)):
        try:
            fig.tight_layout(rect=rect)
            atomic_write(os.path.join(study_dir, "figures", file),
                         lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".png")
        finally:
            plt.close(fig)
        written.append("figures/" + file)

    # Fig. 2: HR@1 bars and ValidRatio line per variant, per pass.
    for pname, r in res["passes"].items():
        vs = [v for v in order if r["variants"][v]["seeds"]]
        if not vs:
            continue
        x = np.arange(len(vs))
        hr = [r["variants"][v]["metrics"]["hr@1"] for v in vs]
        vr = [r["variants"][v]["metrics"]["valid_ratio"] for v in vs]
        fig, ax = plt.subplots(figsize=(max(5.5, 1.0 * len(vs) + 3), 4.2))
        bars = ax.bar(x, [s["mean"] for s in hr], width=0.6, color="C0", alpha=0.85, label="HR@1")
        whiskers(ax, x, hr, color="black")
        ax2 = ax.twinx()
        xv = x + 0.08  # beside the bar's whisker
        (line,) = ax2.plot(xv, [s["mean"] for s in vr], color="C3", marker="o", label="ValidRatio")
        whiskers(ax2, xv, vr, color="C3")
        ax.set_xticks(x)
        ax.set_xticklabels(vs, rotation=20 if len(vs) > 4 else 0, ha="right" if len(vs) > 4 else "center")
        top = lambda sums: max([0.0] + [y for s in sums for y in (s["mean"], s["ci95"][1]) if math.isfinite(y)])
        ax.set_ylim(0, min(1.05, max(0.05, top(hr)) * 1.08))
        ax2.set_ylim(0, 1.05)
        ax.set_ylabel("HR@1")
        ax2.set_ylabel("ValidRatio")
        ax.set_xlabel(f"variant (reference: {ref})")
        ax.grid(True, axis="y", alpha=0.3)
        fig.legend([bars, line], ["HR@1 (left)", "ValidRatio (right)"], fontsize=8, ncol=2, loc="lower center")
        ax.set_title(f"Study {name}, pass {pname}: HR@1 and ValidRatio\n(mean over seeds, 95% t interval)",
                     fontsize=10)
        save(fig, f"fig2_{safe_name(pname)}.png", rect=(0, 0.07, 1, 1))  # the legend below the axis label

    # Fig. 4: the composite against each numeric config key that differs between the variants.
    configs = {v: c for v in order if (c := variant_config(study_dir, study, v)) is not None}
    keys = sorted({k for c in configs.values() for k in c if plotted_key(k)})
    for key in keys:
        numeric = {v: c[key] for v, c in configs.items() if is_number(c.get(key))}
        if len(numeric) < 3 or len(set(numeric.values())) < 2:
            continue
        for pname, r in res["passes"].items():
            pts = sorted(((numeric[v], order.index(v), v) for v in numeric if r["variants"][v]["seeds"]))
            if len(pts) < 2:
                continue
            xs = [p[0] for p in pts]
            sums = [r["variants"][p[2]]["metrics"]["composite"] for p in pts]
            fig, ax = plt.subplots(figsize=(6, 4.2))
            ax.plot(xs, [s["mean"] for s in sums], marker="o", color="C0", label="composite (mean)")
            whiskers(ax, xs, sums, color="C0")
            for (xv, _, v), s in zip(pts, sums):
                ax.annotate(v, (xv, s["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
            elif len(set(xs)) <= 10:
                ax.set_xticks(sorted(set(xs)))
            ax.margins(x=0.1, y=0.12)  # room for the names
            rate_axis(ax)
            ax.set_xlabel(key)
            ax.set_ylabel("composite HR@1 x ValidRatio")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
            ax.set_title(f"Study {name}, pass {pname}: composite vs {key}\n(mean over seeds, 95% t interval)",
                         fontsize=10)
            save(fig, f"composite_vs_{safe_name(key)}_{safe_name(pname)}.png")

    # Fig. 5 and the learning curves, from the runs' metrics.jsonl.
    records = {(v, k): metric_records(study_dir, v, k) for v in order for k in study["seeds"]}

    def per_variant(split, value):
        out = {}
        for v in order:
            series = [s for k in study["seeds"] if (s := step_series(records[(v, k)], split, value))]
            if series:
                out[v] = series
        return out

    val = per_variant("val", lambda r: r["hr@1"] * r["valid_ratio"]
                      if is_number(r.get("hr@1")) and is_number(r.get("valid_ratio")) else None)
    if any(len(s) >= 2 for series in val.values() for s in series):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for v, series in val.items():
            draw_curve(ax, *curve(series), label=v, color=color[v])
        rate_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel("validation hr@1 x valid_ratio")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"Study {name}: validation composite by the runs' evaluator\n"
                     "(mean over seeds, 95% t interval)", fontsize=10)
        save(fig, "validation_composite.png")

    panels = [p for p in (
        ("val_curve", per_variant("val_curve", lambda r: r.get("hr@1")), "learning curve: val hr@1 (likelihood)",
         "hr@1", True),
        ("train", per_variant("train", lambda r: r.get("loss")), "training loss (mean over seeds)", "loss", False))
        if p[1]]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
        for ax, (_, data, title, ylabel, band) in zip(axes[0], panels):
            for v, series in data.items():
                draw_curve(ax, *curve(series), label=v, color=color[v], band=band)
            if band:  # hr@1
                rate_axis(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"Study {name}: learning curves", fontsize=11)
        save(fig, "learning_curves.png")
    return written


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


def builds(study_dir, study):
    """The runs of each build (results.json "build": the library's sha256 prefix), {sha: ["variant/seedK", ...]};
    runs from before builds were recorded are left out."""
    out = {}
    for v in study["variants"]:
        for k in study["seeds"]:
            path = os.path.join(study_dir, v, f"seed{k}", "results.json")
            try:
                with open(path, encoding="utf-8") as f:
                    sha = json.load(f).get("build", {}).get("library_sha256")
            except (OSError, json.JSONDecodeError):
                continue
            if sha:
                out.setdefault(sha, []).append(f"{v}/seed{k}")
    return out


def markdown(study, res):
    lines = [f"# Study {study.get('name', '')}: results", "",
             f"Reference variant: `{study['reference']}`; seeds {study['seeds']}. Mean, sd and 95% t interval "
             "over seeds; tests against the reference: paired t over seeds, exact McNemar on HR@1 hits and "
             "Wilcoxon signed-rank on the target's rank, both over all cases of all seeds; p with Holm's "
             "correction across variants.", ""]
    if len(res.get("builds", {})) > 1:
        lines += ["Runs come from more than one build (the library's sha256): " +
                  "; ".join(f"`{sha}`: {', '.join(runs)}" for sha, runs in res["builds"].items()), ""]
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
                + (f"{mc['wins']}/{mc['losses']}, {fmt_p(mc)}" if mc else "reference" if v == study["reference"] else "n/a")
                + " | "
                + fmt_p(vs.get("wilcoxon_rank")) + " |")
        lines.append("")
        if "clean_pass" in r:
            lines += noise_markdown(study, name, r)
    figs = res.get("figures", [])
    if figs:
        lines += ["## Figures", ""] + [f"- [{os.path.basename(f)}]({f})" for f in figs] + [""]
    return "\n".join(lines)


def noise_markdown(study, name, r):
    noise = next((p.get("noise", {}) for p in study["passes"] if p["name"] == name), {})
    what = (f"{noise.get('kind', '?')} noise, {noise.get('count', '?')} item(s) at position "
            f"{noise.get('position', '?')}")
    lines = [f"## Noise: {name}", ""]
    if r["clean_pass"] is None:
        return lines + [f"{what}; no clean pass with the same split and evaluator to compare with.", ""]
    lines += [f"{what}, against the clean pass `{r['clean_pass']}` over the seeds that have both. Drop = clean - "
              "noisy HR@1 per seed (mean [95% t CI]); paired t over seeds of clean against noisy HR@1; exact "
              "McNemar of the noisy hits against the clean hits over all cases of those seeds (wins: noisy right, "
              "clean wrong); p with Holm's correction across variants.", "",
              "| variant | seeds | clean HR@1 | noisy HR@1 | drop mean [95% CI] | paired t | McNemar (wins/losses) |",
              "|---|---|---|---|---|---|---|"]
    for v, e in r["variants"].items():
        vc = e.get("vs_clean")
        if vc is None:
            lines.append(f"| {v} | 0 | n/a | n/a | n/a | n/a | n/a |")
            continue
        d, mc = vc["drop"], vc["mcnemar"]
        lines.append(f"| {v} | {len(vc['seeds'])} | {fmt(vc['hr@1_clean']['mean'])} | {fmt(vc['hr@1_noisy']['mean'])} | "
                     f"{fmt(d['mean'])} [{fmt(d['ci95'][0])}, {fmt(d['ci95'][1])}] | {fmt_p(vc['paired_t'])} | "
                     f"{mc['wins']}/{mc['losses']}, {fmt_p(mc)} |")
    return lines + [""]


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
    loaded = {p["name"]: load_runs(study_dir, study, p) for p in study["passes"]}
    res = {"study": study.get("name", ""), "reference": study["reference"],
           "passes": {p["name"]: report_pass(study_dir, study, p, loaded[p["name"]]) for p in study["passes"]}}
    for p in study["passes"]:
        if "noise" not in p:
            continue
        clean = clean_counterpart(study, p)
        r = res["passes"][p["name"]]
        r["clean_pass"] = clean["name"] if clean else None
        if clean is None:
            print(f"warning: noisy pass {p['name']} has no clean pass with the same split and evaluator",
                  file=sys.stderr)
            continue
        drops = noise_drops(study_dir, study, p, clean, loaded[p["name"]][0], loaded[clean["name"]][0])
        for v, entry in drops.items():
            r["variants"][v]["vs_clean"] = entry
    res["figures"] = figures(study_dir, study, res)
    res["builds"] = builds(study_dir, study)
    atomic_write_text(os.path.join(study_dir, "results.json"), json.dumps(no_nan(res), indent=2, allow_nan=False) + "\n")
    rows = [["pass", "variant", "metric", "seeds", "mean", "sd", "ci95_low", "ci95_high", "per_seed"]]
    for name, r in res["passes"].items():
        for v, e in r["variants"].items():
            for m, s in e["metrics"].items():
                rows.append([name, v, m, len(e["seeds"]), s["mean"], s["sd"], s["ci95"][0], s["ci95"][1],
                             " ".join(repr(x) for x in s["values"])])
            if "vs_clean" in e:
                s = e["vs_clean"]["drop"]
                rows.append([name, v, "hr@1_drop", len(e["vs_clean"]["seeds"]), s["mean"], s["sd"], s["ci95"][0],
                             s["ci95"][1], " ".join(repr(x) for x in s["values"])])
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
