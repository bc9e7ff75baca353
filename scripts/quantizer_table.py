#!/usr/bin/env python3
"""One markdown table of sbtrec-quantize runs (their stats.json): per directory the item rows, the
quantizer.collisions and quantizer.normalize settings, the item codes' collision rate (collisions /
items, on the L-level tuples), the largest shared tuple, the collisions left after the extra code
(collisions: index), each level's perplexity, the relative error, and genre purity of level 1 and of
the full tuple with its shuffled baseline (where the dataset has genres).
Usage: quantizer_table.py DIR [DIR ...]"""

import argparse
import json
import os
import sys


def row(d):
    path = os.path.join(d, "stats.json")
    try:
        with open(path) as f:
            s = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {path}: {e} (run sbtrec-quantize --out {d} first)")
    items = s.get("items")
    if items is None:
        sys.exit(f"error: {path}: no 'items' section (fitted with quantizer.inputs: user?)")
    q = items["quantizer"]
    left = items["index"]["collisions"] if "index" in items else q["collisions"]
    perplexity = " / ".join(f"{lv['perplexity']:.1f}" for lv in q["levels"])
    purity = s.get("genre_purity", {}).get("items")

    def p(x):
        return f"{x['purity']:.3f} ({x['shuffled']:.3f})" if x else "n/a"

    return [s.get("item_rows", "input"), s.get("collisions", "keep"), str(s.get("normalize", False)).lower(),
            f"{q['collision_rate']:.3f}", str(q["largest_shared_tuple"]), str(left), perplexity,
            f"{q['relative_error']:.3f}", p(purity["levels"][0]) if purity else "n/a",
            p(purity["tuple"]) if purity else "n/a"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="sbtrec-quantize --out directories")
    a = ap.parse_args()
    head = ["item rows", "collisions", "normalize", "collision rate", "largest shared tuple", "collisions left",
            "perplexity per level", "relative error", "genre purity level 1 (shuffled)", "genre purity tuple (shuffled)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for d in a.dirs:
        print("| " + " | ".join(row(d)) + " |")


if __name__ == "__main__":
    main()
