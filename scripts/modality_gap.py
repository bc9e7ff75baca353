#!/usr/bin/env python3
"""The modality gap between SBT-Rec's behavioural tokens and the LLM's own words (issue 23: the paper's
Fig. 3 and one number that needs no picture), for one or more runs (e.g. the MLP and the linear aligner).

Input per run: the safetensors file `sbtrec-eval --config RUN/config.yaml --checkpoint RUN --tokens F`
writes: "item_tokens" [N, E], every item's aligned behavioural token, and "title_embeddings" [N, E], the
mean of the LLM's input embeddings of its title's tokens. The same `--items` items (a seeded draw) are
used for every run, each vector scaled to unit length (the gap is one of directions, not of norms).

Numbers per run (modality_gap.json):
  knn_mixing      for each of the 2n vectors, the share of its k nearest neighbours (cosine, itself left
                  out) that come from the other set, averaged and divided by n / (2n - 1), the share
                  under perfect mixing: 0 = two separate clouds, 1 = indistinguishable sets;
  centroid_gap    the distance between the two sets' mean unit vectors (Liang et al. 2022's gap);
  own_title_cosine  mean cosine of an item's token with its own title's embedding;
  own_title_hr@1  share of tokens whose nearest title (cosine, among the n) is their own.
Figure (fig3_tsne.png): a t-SNE (scikit-learn) of the 2n unit vectors per run, tokens and titles in two
colours, one panel per run.

Usage: modality_gap.py --run NAME=TOKENS.safetensors [--run NAME=FILE ...] --out DIR
                       [--items 1000] [--k 10] [--seed 0] [--perplexity 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write, atomic_write_text  # noqa: E402


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def gap_numbers(tokens, titles, k):
    """The module docstring's numbers for paired unit vectors tokens [n, E], titles [n, E]."""
    from sklearn.neighbors import NearestNeighbors

    n = tokens.shape[0]
    both = np.concatenate([tokens, titles])
    side = np.repeat([0, 1], n)
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(both)
    idx = nn.kneighbors(both, return_distance=False)
    # Drop each point itself (the first neighbour, or wherever it sits when a duplicate ties with it).
    others = np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])
    cross = (side[others] != side[:, None]).mean()
    sims = tokens @ titles.T  # [n, n]
    return {"items": int(n), "k": int(k),
            "knn_mixing": float(cross / (n / (2 * n - 1))),
            "knn_other_share": float(cross),
            "centroid_gap": float(np.linalg.norm(tokens.mean(0) - titles.mean(0))),
            "own_title_cosine": float(np.mean(np.sum(tokens * titles, axis=1))),
            "own_title_hr@1": float(np.mean(sims.argmax(1) == np.arange(n)))}


def load(path):
    from safetensors.numpy import load_file

    t = load_file(path)
    for key in ("item_tokens", "title_embeddings"):
        if key not in t:
            raise SystemExit(f"error: {path}: no tensor '{key}' (write it with sbtrec-eval --tokens)")
    if t["item_tokens"].shape != t["title_embeddings"].shape:
        raise SystemExit(f"error: {path}: item_tokens {t['item_tokens'].shape} and title_embeddings "
                         f"{t['title_embeddings'].shape} differ in shape")
    return t["item_tokens"].astype(np.float64), t["title_embeddings"].astype(np.float64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=TOKENS.safetensors (repeatable)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--items", type=int, default=1000, help="items drawn (all when fewer)")
    ap.add_argument("--k", type=int, default=10, help="neighbours of the mixing number")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perplexity", type=float, default=30.0)
    args = ap.parse_args(argv)
    runs = []
    for spec in args.run:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: --run {spec!r}: expected NAME=FILE")
        if not os.path.exists(path):
            raise SystemExit(f"error: --run {name}: {path} does not exist")
        runs.append((name, *load(path)))
    n_items = runs[0][1].shape[0]
    if any(r[1].shape[0] != n_items for r in runs):
        raise SystemExit("error: the runs hold different numbers of items (not the same dataset?)")
    rng = np.random.default_rng(args.seed)
    sel = np.sort(rng.choice(n_items, size=min(args.items, n_items), replace=False))
    result = {"items": int(len(sel)), "seed": args.seed, "runs": {}}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 5), squeeze=False)
    for ax, (name, tokens, titles) in zip(axes[0], runs):
        x, y = unit(tokens[sel]), unit(titles[sel])
        result["runs"][name] = gap_numbers(x, y, args.k)
        emb = TSNE(n_components=2, init="pca", random_state=args.seed,
                   perplexity=min(args.perplexity, (2 * len(sel) - 1) / 3)).fit_transform(np.concatenate([x, y]))
        n = len(sel)
        ax.scatter(emb[n:, 0], emb[n:, 1], s=4, c="tab:orange", alpha=0.6, label="title embeddings (LLM)")
        ax.scatter(emb[:n, 0], emb[:n, 1], s=4, c="tab:blue", alpha=0.6, label="behavioural tokens")
        r = result["runs"][name]
        ax.set_title(f"{name}: k-NN mixing {r['knn_mixing']:.2f}, gap {r['centroid_gap']:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=8, markerscale=3)
    fig.suptitle(f"t-SNE of {len(sel)} items' behavioural tokens and title embeddings")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "fig3_tsne.png"), lambda f: fig.savefig(f, format="png", dpi=120))
    atomic_write_text(os.path.join(args.out, "modality_gap.json"), json.dumps(result, indent=2) + "\n")
    for name, r in result["runs"].items():
        print(f"{name}: k-NN mixing {r['knn_mixing']:.4f} (k {r['k']}), centroid gap {r['centroid_gap']:.4f}, "
              f"own-title cosine {r['own_title_cosine']:.4f}, own-title HR@1 {r['own_title_hr@1']:.4f}")
    print(f"wrote {os.path.join(args.out, 'modality_gap.json')} and fig3_tsne.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
