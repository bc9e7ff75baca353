#!/usr/bin/env python3
"""Summary of scripts/quality_run.sh: per variant HR@1 by generation (Wilson 95% interval) and
ValidRatio, likelihood HR@1 / HR@5 / NDCG@5, the paired differences in HR@1 against SBT-Rec on the same
test cases, by generation and by likelihood (exact two-sided McNemar: a binomial test on the
discordant cases; scripts/paired_stats.py), SASRec alone on the same candidate sets, and each variant's
learning curve (training loss every log_every steps). Markdown on stdout.

Usage: quality_summary.py OUT [VARIANTS...]
"""
import json
import os
import sys

from paired_stats import jsonl, mcnemar, run_cases, wilson


def paired(a, b):
    """SBT-Rec's wins and losses against a variant on the same cases, and McNemar's exact p."""
    wins, losses, p = mcnemar(a, b)
    return f"wins {wins}, loses {losses} (p = {p:.2g})"


def main(argv):
    out = argv[1]
    variants = argv[2:] or ["sbtrec", "shuffled", "text_only"]
    sas = json.load(open(os.path.join(out, "sasrec.json")))
    hits, lhits = {}, {}
    rows = []
    for v in variants:
        gen, lik_cases = run_cases(os.path.join(out, v))
        lik = json.load(open(os.path.join(out, f"{v}_likelihood.json")))
        res = json.load(open(os.path.join(out, f"{v}.json")))
        h = [bool(p["hit"]) for p in gen]
        hits[v] = h
        lhits[v] = [p["rank"] == 0 for p in lik_cases]
        n, k = len(h), sum(h)
        lo, hi = wilson(k, n)
        valid = sum(bool(p["valid"]) for p in gen) / n
        rows.append((v, n, k / n, lo, hi, valid, lik.get("hr@1"), lik.get("hr@5"), lik.get("ndcg@5"), res))
    print("| variant | n | HR@1 (generation) [95% Wilson] | ValidRatio | HR@1 / HR@5 / NDCG@5 (likelihood) "
          "| SBT-Rec vs it, generation | SBT-Rec vs it, likelihood | first -> last loss |")
    print("|---|---|---|---|---|---|---|---|")
    for v, n, hr, lo, hi, valid, l1, l5, n5, res in rows:
        same = v != "sbtrec" and "sbtrec" in hits and len(hits["sbtrec"]) == n
        pg = paired(hits["sbtrec"], hits[v]) if same else "-"
        pl = paired(lhits["sbtrec"], lhits[v]) if same and len(lhits["sbtrec"]) == len(lhits[v]) else "-"
        print(f"| {v} | {n} | {hr:.4f} [{lo:.3f}, {hi:.3f}] | {valid:.4f} | {l1:.4f} / {l5:.4f} / {n5:.4f} | {pg} | {pl} | "
              f"{res.get('first_loss', float('nan')):.3f} -> {res.get('last_loss', float('nan')):.3f} |")
    n = sas.get("n", 0)
    k = round(sas["hr@1"] * n)
    lo, hi = wilson(k, n)
    print(f"| SASRec alone (LLaRA's checkpoint) | {n} | {sas['hr@1']:.4f} [{lo:.3f}, {hi:.3f}] | 1 (ranks) | - | - | - | - |")
    print()
    print("Learning curves (training loss, mean over each log window):")
    for v in variants:
        curve = [r for r in jsonl(os.path.join(out, v, "metrics.jsonl")) if r.get("split") == "train"]
        print(f"- {v}: " + ", ".join(f"{r['step']}: {r['loss']:.3f}" for r in curve))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
