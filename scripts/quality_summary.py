#!/usr/bin/env python3
"""Summary of scripts/quality_run.sh: per variant HR@1 (Wilson 95% interval), ValidRatio, likelihood
HR@1 / HR@5 / NDCG@5, the paired difference in HR@1 against SBT-Rec on the same test cases (exact
two-sided McNemar / sign test on the discordant cases), SASRec alone on the same candidate sets, and
each variant's learning curve (training loss every log_every steps). Markdown on stdout.

Usage: quality_summary.py OUT [VARIANTS...]
"""
import json
import math
import os
import sys


def wilson(k, n, z=1.959964):
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def sign_test(b, c):
    """Exact two-sided binomial test of b vs c discordant pairs (McNemar's exact test)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * p)


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    out = argv[1]
    variants = argv[2:] or ["sbtrec", "shuffled", "text_only"]
    sas = json.load(open(os.path.join(out, "sasrec.json")))
    hits = {}
    rows = []
    for v in variants:
        gen = jsonl(os.path.join(out, v, "predictions_generation.jsonl"))
        lik = json.load(open(os.path.join(out, f"{v}_likelihood.json")))
        res = json.load(open(os.path.join(out, f"{v}.json")))
        h = [bool(p["hit"]) for p in gen]
        hits[v] = h
        n, k = len(h), sum(h)
        lo, hi = wilson(k, n)
        valid = sum(bool(p["valid"]) for p in gen) / n
        rows.append((v, n, k / n, lo, hi, valid, lik.get("hr@1"), lik.get("hr@5"), lik.get("ndcg@5"), res))
    print("| variant | n | HR@1 (generation) [95% Wilson] | ValidRatio | HR@1 / HR@5 / NDCG@5 (likelihood) | vs SBT-Rec on the same cases | first -> last loss |")
    print("|---|---|---|---|---|---|---|")
    for v, n, hr, lo, hi, valid, l1, l5, n5, res in rows:
        if v != "sbtrec" and "sbtrec" in hits and len(hits["sbtrec"]) == n:
            b = sum(a and not x for a, x in zip(hits["sbtrec"], hits[v]))
            c = sum(x and not a for a, x in zip(hits["sbtrec"], hits[v]))
            paired = f"SBT-Rec wins {b}, loses {c} (p = {sign_test(b, c):.2f})"
        else:
            paired = "-"
        print(f"| {v} | {n} | {hr:.4f} [{lo:.3f}, {hi:.3f}] | {valid:.4f} | {l1:.4f} / {l5:.4f} / {n5:.4f} | {paired} | "
              f"{res['first_loss']:.3f} -> {res['last_loss']:.3f} |")
    n = sas.get("n", 0)
    k = round(sas["hr@1"] * n)
    lo, hi = wilson(k, n)
    print(f"| SASRec alone (LLaRA's checkpoint) | {n} | {sas['hr@1']:.4f} [{lo:.3f}, {hi:.3f}] | 1 (ranks) | - | - | - |")
    print()
    print("Learning curves (training loss, mean over each log window):")
    for v in variants:
        curve = [r for r in jsonl(os.path.join(out, v, "metrics.jsonl")) if r.get("split") == "train"]
        print(f"- {v}: " + ", ".join(f"{r['step']}: {r['loss']:.3f}" for r in curve))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
