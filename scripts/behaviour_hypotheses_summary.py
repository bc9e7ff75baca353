#!/usr/bin/env python3
"""The table of scripts/behaviour_hypotheses.sh: per run (the shipped SmolLM2 config with one option
changed) the test HR@1 and HR@5 by candidate likelihood with Wilson 95% intervals, token reliance (HR@1
with the candidates' tokens rotated by one candidate, and the mean shift of the target's rank), the
first and last training loss, and the exact McNemar test against `shipped` on the same cases
(scripts/paired_stats.py). Markdown on stdout.

Usage: behaviour_hypotheses_summary.py OUT [RUNS...]
"""
import json
import os
import sys

from paired_stats import jsonl, mcnemar, wilson


def main(argv):
    out = argv[1]
    runs = argv[2:] or sorted(d for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "predictions.jsonl")))
    preds = {r: jsonl(os.path.join(out, r, "predictions.jsonl")) for r in runs}
    res = {r: json.load(open(os.path.join(out, f"{r}.json"))) for r in runs}
    ref = "shipped" if "shipped" in runs else None
    print("| run | n | HR@1 likelihood [95%] | HR@5 | tokens rotated: HR@1, rank shift | vs shipped (wins / losses, p) "
          "| first -> last loss | min |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        p = preds[r]
        h1 = [q["rank"] == 0 for q in p]
        k, n = sum(h1), len(h1)
        lo, hi = wilson(k, n)
        h5 = sum(q["rank"] < 5 for q in p) / max(1, n)
        perm = [q for q in p if "rank_tokens_permuted" in q]
        rel = "-"
        if perm:
            shift = sum(q["rank_tokens_permuted"] - q["rank"] for q in perm) / len(perm)
            rel = f"{sum(q['rank_tokens_permuted'] == 0 for q in perm) / len(perm):.3f}, {shift:+.2f}"
        paired = "-"
        if ref and r != ref and len(preds[ref]) == n:
            w, l, pv = mcnemar(h1, [q["rank"] == 0 for q in preds[ref]])
            paired = f"+{w} / -{l}, p = {pv:.2g}"
        loss = f"{res[r].get('first_loss', float('nan')):.3f} -> {res[r].get('last_loss', float('nan')):.3f}"
        minutes = res[r].get("seconds", float("nan")) / 60
        print(f"| {r} | {n} | {k / max(1, n):.3f} [{lo:.2f}, {hi:.2f}] | {h5:.3f} | {rel} | {paired} | {loss} | "
              f"{minutes:.1f} |")
    print()
    print("Chance: HR@1 0.05, HR@5 0.25 (20 candidates). Each run changes one option of the shipped config "
          "(scripts/behaviour_hypotheses.sh names it).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
