#!/usr/bin/env python3
"""Runs an sbtrec benchmark command and its Python reference alternately, REPEATS times each, in one
run, and compares the best result of each side (alternating spreads machine noise over both sides;
the best of several runs is the least disturbed one). Each command must print one JSON object on its
last stdout line. Prints every JSON line, a summary line, and last `speedup: X.XX`.

Usage: compare.py --key seconds_per_step --lower-is-better --repeats 3 --cpp "CMD" --ref "CMD"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys


def run(cmd: str) -> dict:
    out = subprocess.run(shlex.split(cmd), check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = out.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--key", required=True, help="JSON field compared")
    ap.add_argument("--lower-is-better", action="store_true", help="a time rather than a rate")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpp", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--label", default="", help="text for the summary line")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    pick = min if args.lower_is_better else max
    cpp, ref = [], []
    for _ in range(args.repeats):
        cpp.append(run(args.cpp)[args.key])
        ref.append(run(args.ref)[args.key])
    c, r = pick(cpp), pick(ref)
    print(f"{args.key}: sbtrec {c:.4g}, reference {r:.4g} (best of {args.repeats} alternating runs{args.label})")
    print(f"speedup: {(r / c if args.lower_is_better else c / r):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
