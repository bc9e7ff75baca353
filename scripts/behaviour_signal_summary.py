#!/usr/bin/env python3
"""The table of scripts/behaviour_signal.sh: per variant HR@1 by generation (Wilson 95% interval) and
ValidRatio, HR@1 and HR@5 by candidate likelihood (Wilson intervals), token reliance (likelihood HR@1
with the candidates' tokens rotated by one candidate, and the mean shift of the target's rank), and
per-case paired tests against text-only on the same test cases (exact McNemar: a two-sided binomial
test on the discordant cases; scripts/paired_stats.py), beside SASRec alone on the same candidate
sets. Markdown on stdout.

Usage: behaviour_signal_summary.py OUT [VARIANTS...]
"""
import json
import os
import sys

from paired_stats import jsonl, mcnemar, run_cases, wilson


def rate(hits):
    k, n = sum(hits), len(hits)
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} [{lo:.2f}, {hi:.2f}]" if n else "-"


def main(argv):
    out = argv[1]
    variants = argv[2:] or ["sbtrec", "shuffled", "text_only", "continuous"]
    gen, lik, res, likj = {}, {}, {}, {}
    for v in variants:
        gen[v], lik[v] = run_cases(os.path.join(out, v))
        res[v] = json.load(open(os.path.join(out, f"{v}.json")))
        likj[v] = json.load(open(os.path.join(out, f"{v}_likelihood.json")))
    print("| variant | HR@1 generation [95%] | ValidRatio | HR@1 likelihood [95%] | HR@5 likelihood | "
          "tokens permuted: HR@1, rank shift | vs text-only, generation | vs text-only, likelihood | train min |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = "text_only" if "text_only" in variants else None
    for v in variants:
        g = [bool(p["hit"]) for p in gen[v]]
        lh = [p["rank"] == 0 for p in lik[v]]
        l5 = [p["rank"] < 5 for p in lik[v]]
        valid = sum(bool(p["valid"]) for p in gen[v]) / max(1, len(gen[v]))
        rel = "-"
        perm = [p for p in lik[v] if "rank_tokens_permuted" in p]
        if perm:
            shift = sum(p["rank_tokens_permuted"] - p["rank"] for p in perm) / len(perm)
            rel = f"{sum(p['rank_tokens_permuted'] == 0 for p in perm) / len(perm):.3f}, {shift:+.2f}"
        paired_g = paired_l = "-"
        if base and v != base:
            bg = [bool(p["hit"]) for p in gen[base]]
            bl = [p["rank"] == 0 for p in lik[base]]
            if len(bg) == len(g):
                w, l, p = mcnemar(g, bg)
                paired_g = f"+{w} / -{l}, p = {p:.2g}"
            if len(bl) == len(lh):
                w, l, p = mcnemar(lh, bl)
                paired_l = f"+{w} / -{l}, p = {p:.2g}"
        minutes = res[v].get("seconds", float("nan")) / 60
        print(f"| {v} (n {len(g)} / {len(lh)}) | {rate(g)} | {valid:.3f} | {rate(lh)} | {rate(l5)} | {rel} | "
              f"{paired_g} | {paired_l} | {minutes:.1f} |")
    sas = json.load(open(os.path.join(out, "sasrec.json")))["test"]
    n = sas.get("n", 0)
    k = round(sas["hr@1"] * n)
    lo, hi = wilson(k, n)
    print(f"| SASRec alone (n {n}) | - | - | {sas['hr@1']:.3f} [{lo:.2f}, {hi:.2f}] (its own ranking) | - | - | - | - | - |")
    print()
    print("Chance: HR@1 0.05, HR@5 0.25 (20 candidates). Learning curves (val_curve: likelihood HR@1 on the first "
          "validation cases; train: loss):")
    for v in variants:
        recs = jsonl(os.path.join(out, v, "metrics.jsonl"))
        curve = [r for r in recs if r.get("split") == "val_curve"]
        if curve:
            print(f"- {v} val_curve HR@1: " + ", ".join(f"{r['step']}: {r['hr@1']:.2f}" for r in curve))
        loss = [r for r in recs if r.get("split") == "train"]
        print(f"- {v} loss: " + ", ".join(f"{r['step']}: {r['loss']:.3f}" for r in loss))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
