#!/usr/bin/env python3
"""Two sets of runs compared case by case, pooled over seeds: predictions files of variant A and of
variant B (the same cases, seed by seed, in the same order), each a comma-separated list. Prints each
one's HR@1 and ValidRatio per file, the pooled hits gained / lost with the exact McNemar p (scipy, through
paired_stats.py), and with ranks (likelihood mode) the target's mean rank and the Wilcoxon signed-rank p.
Usage: paired_runs.py A1.jsonl[,A2.jsonl...] B1.jsonl[,B2.jsonl...] [--names A B]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_stats import jsonl, mcnemar, wilcoxon  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="variant A's predictions files, comma-separated (one per seed)")
    ap.add_argument("b", help="variant B's, in the same seed order")
    ap.add_argument("--names", nargs=2, default=["A", "B"], help="the two variants' names")
    args = ap.parse_args(argv)
    fa, fb = args.a.split(","), args.b.split(",")
    if len(fa) != len(fb):
        sys.exit(f"error: {len(fa)} files for {args.names[0]} but {len(fb)} for {args.names[1]}")
    hits = {0: [], 1: []}
    ranks = {0: [], 1: []}
    for pair in zip(fa, fb):
        rows = [jsonl(f) for f in pair]
        if len(rows[0]) != len(rows[1]) or any(x.get("case") != y.get("case") for x, y in zip(*rows)):
            sys.exit(f"error: {pair[0]} and {pair[1]} do not hold the same cases in the same order")
        for i, (name, f, r) in enumerate(zip(args.names, pair, rows)):
            n = len(r)
            print(f"{name} {f}: HR@1 {sum(x['hit'] for x in r) / n:.3f}, ValidRatio {sum(x['valid'] for x in r) / n:.3f} (n {n})")
            hits[i] += [bool(x["hit"]) for x in r]
            if all("rank" in x for x in r):
                ranks[i] += [x["rank"] for x in r]
    n = len(hits[0])
    gained, lost, p = mcnemar(hits[1], hits[0])
    print(f"pooled ({n} cases): {args.names[0]} {sum(hits[0]) / n:.3f} -> {args.names[1]} {sum(hits[1]) / n:.3f}; "
          f"hits gained {gained}, lost {lost}; exact McNemar p {p:.4f}")
    if len(ranks[0]) == n and len(ranks[1]) == n:
        pw = wilcoxon(ranks[0], ranks[1])["p"]
        print(f"target's mean rank {sum(ranks[0]) / n:.2f} -> {sum(ranks[1]) / n:.2f}; Wilcoxon signed-rank p {pw:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
