#!/usr/bin/env python3
"""What a balanced last level would do to an HDSD fit (issue 24 §3, the optional part), measured before
building it: LC-Rec's last level assigns items to codes under a capacity (Sinkhorn's uniform marginals);
its exact limit is the minimum-cost assignment in which each code takes at most ceil(N / K) items,
solved here with scipy's linear_sum_assignment over the code columns repeated `capacity` times.

Reads an `sbtrec-quantize` output directory (codebooks.safetensors, codes.safetensors, stats.json) fitted
with quantizer.collisions keep and item_rows input, and the imported encoder's item_embeddings rows; keeps
levels 1..L-1 and the last level's codebook as fitted, reassigns the last level under the capacity, and
prints, for the fit as it is and for the balanced last level: collision rate ((N - distinct tuples) / N,
as stats.json), largest shared tuple, items sharing a tuple, the last level's perplexity, and the relative
error ||x - sum of codes||_F / ||x||_F. Check: the fit's own row reproduces stats.json's figures.

Usage: balanced_level.py QUANTIZE_DIR ENCODER_DIR [--capacity C] [--json PATH]
(--json writes the two rows as {"capacity": C, "fitted": {...}, "balanced": {...}}, written atomically.)
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402


def tuple_stats(codes):
    """Collision rate, largest shared tuple and items sharing a tuple of [N, L] codes."""
    counts = collections.Counter(map(tuple, codes.tolist()))
    n = len(codes)
    return {"collision_rate": (n - len(counts)) / n, "largest_shared_tuple": max(counts.values()),
            "items_sharing_a_tuple": sum(c for c in counts.values() if c > 1)}


def perplexity(level_codes, k):
    p = np.bincount(level_codes, minlength=k) / len(level_codes)
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def relative_error(x, codebooks, codes):
    recon = sum(codebooks[l][codes[:, l]] for l in range(codes.shape[1]))  # [N, D]
    return float(np.linalg.norm(x - recon) / np.linalg.norm(x))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("quantize_dir")
    ap.add_argument("encoder_dir")
    ap.add_argument("--capacity", type=int, default=0, help="items per code at the last level (0: ceil(N / K))")
    ap.add_argument("--json", default="", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    for f in ("stats.json", "codebooks.safetensors", "codes.safetensors"):
        if not os.path.exists(os.path.join(a.quantize_dir, f)):
            sys.exit(f"error: {os.path.join(a.quantize_dir, f)} does not exist (an sbtrec-quantize --out directory?)")
    if not os.path.exists(os.path.join(a.encoder_dir, "model.safetensors")):
        sys.exit(f"error: {os.path.join(a.encoder_dir, 'model.safetensors')} does not exist (the encoder the fit used)")
    with open(os.path.join(a.quantize_dir, "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    if stats.get("collisions") != "keep" or stats.get("item_rows") != "input" or stats.get("normalize"):
        sys.exit(f"error: {a.quantize_dir}/stats.json: needs a fit with collisions keep, item_rows input and "
                 "normalize false; refit with sbtrec-quantize --set quantizer.collisions=keep")
    codebooks = load_file(os.path.join(a.quantize_dir, "codebooks.safetensors"))["codebooks"]  # [L, K, D]
    codes = load_file(os.path.join(a.quantize_dir, "codes.safetensors"))["item_codes"]  # [N, L]
    table = load_file(os.path.join(a.encoder_dir, "model.safetensors"))["item_embeddings.weight"]
    n, levels = codes.shape
    k = codebooks.shape[1]
    x = table[:n].astype(np.float64)  # [N, D], sbtrec's item rows (the encoder's first N rows)
    cb = codebooks.astype(np.float64)
    capacity = a.capacity or math.ceil(n / k)
    if capacity * k < n:
        sys.exit(f"error: --capacity {capacity} x {k} codes < {n} items")

    residual = x - sum(cb[l][codes[:, l]] for l in range(levels - 1))  # [N, D] before the last level
    cost = ((residual[:, None, :] - cb[levels - 1][None]) ** 2).sum(-1)  # [N, K]
    nearest = cost.argmin(1)
    if not np.array_equal(nearest, codes[:, -1]):
        print(f"warning: the last level's nearest codes differ from codes.safetensors on "
              f"{int((nearest != codes[:, -1]).sum())} items (not the encoder rows it was fitted on?)", file=sys.stderr)
    rows, cols = linear_sum_assignment(np.repeat(cost, capacity, axis=1))  # columns: code c's slots c*cap..
    balanced = codes.copy()
    balanced[rows, -1] = cols // capacity

    out = {}
    for key, c in (("fitted", codes), ("balanced", balanced)):
        out[key] = dict(tuple_stats(c), last_level_perplexity=perplexity(c[:, -1], k),
                         relative_error=relative_error(x, cb, c),
                         last_level_moved=int((c[:, -1] != codes[:, -1]).sum()))
    q = stats["items"]["quantizer"]
    print(f"{a.quantize_dir}: {n} items, {levels} levels x {k} codes; stats.json: collision rate "
          f"{q['collision_rate']:.4f}, largest shared tuple {q['largest_shared_tuple']}, relative error "
          f"{q['relative_error']:.4f}, last level perplexity {q['levels'][-1]['perplexity']:.2f}")
    print("| last level | collision rate | largest shared tuple | items sharing a tuple | last-level perplexity | "
          "relative error | items moved |")
    print("|---|---|---|---|---|---|---|")
    names = {"fitted": "fitted (nearest code)", "balanced": f"balanced last level (capacity {capacity})"}
    for key, r in out.items():
        print(f"| {names[key]} | {r['collision_rate']:.4f} | {r['largest_shared_tuple']} | {r['items_sharing_a_tuple']} | "
              f"{r['last_level_perplexity']:.2f} | {r['relative_error']:.4f} | {r['last_level_moved']} |")
    if a.json:
        atomic_write_text(a.json, json.dumps(dict(out, capacity=capacity), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
