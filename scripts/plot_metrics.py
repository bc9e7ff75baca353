#!/usr/bin/env python3
"""Plot an sbtrec run's RUN_DIR/metrics.jsonl: one subplot per numeric metric (x = epoch), one line per
split (train/val/test), saved as PNG (default RUN_DIR/metrics.png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write  # noqa: E402

# Keys that describe a record rather than measure something.
NON_METRIC_KEYS = {"epoch", "step", "split", "n", "seed"}  # bookkeeping, not curves
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


class MetricsError(Exception):
    pass


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_metrics(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise MetricsError(f"{path}: not found; pass a run directory that contains metrics.jsonl")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise MetricsError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise MetricsError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            if not _is_number(rec.get("epoch")):
                raise MetricsError(f"{path}:{lineno}: missing or non-numeric \"epoch\"")
            split = rec.get("split", "train")
            if not isinstance(split, str):
                raise MetricsError(f"{path}:{lineno}: \"split\" must be a string, got {split!r}")
            rec["_line"] = lineno
            records.append(rec)
    if not records:
        raise MetricsError(f"{path}: empty; expected one JSON object per line")
    return records


def collect(records: list[dict]) -> dict[str, dict[str, list[tuple[float, float, int]]]]:
    """metric -> split -> [(epoch, value, order)]; order keeps per-step records in file order."""
    series: dict[str, dict[str, list]] = {}
    for i, rec in enumerate(records):
        split = rec.get("split", "train")
        for k, v in rec.items():
            if k in NON_METRIC_KEYS or k.startswith("_") or not _is_number(v) or not math.isfinite(v):
                continue
            series.setdefault(k, {}).setdefault(split, []).append((float(rec["epoch"]), float(v), i))
    return series


def plot(series: dict, out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    metrics = sorted(series, key=lambda m: (m != "loss", m))  # loss first, then alphabetical
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for split in sorted(series[metric], key=lambda s: (SPLIT_ORDER.get(s, 9), s)):
            pts = sorted(series[metric][split], key=lambda p: (p[0], p[2]))
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            # Same colour for a split in every subplot.
            color = f"C{SPLIT_ORDER.get(split, 3 + sum(map(ord, split)) % 7)}"
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=split, color=color)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100), suffix=".png")
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", metavar="RUN_DIR", help="run directory containing metrics.jsonl")
    ap.add_argument("--out", help="output PNG (default RUN_DIR/metrics.png)")
    args = ap.parse_args(argv)
    path = os.path.join(args.run_dir, "metrics.jsonl")
    out = args.out or os.path.join(args.run_dir, "metrics.png")
    try:
        records = read_metrics(path)
        series = collect(records)
        if not series:
            raise MetricsError(f"{path}: no numeric metrics besides epoch/step")
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise MetricsError(f"{out}: output directory does not exist")
        plot(series, out, os.path.abspath(args.run_dir))
    except MetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {len(records)} records, metrics: {', '.join(sorted(series))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
