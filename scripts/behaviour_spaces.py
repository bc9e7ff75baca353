#!/usr/bin/env python3
"""Which of a frozen encoder's vectors can tell the LLM which candidate comes next? For each case of an
export with candidates (`sbtrec-data export --split test --candidates`), ranks the candidates by a
similarity between vectors that SBT-Rec could hand to the LLM, and prints HR@1 for each rule:

- the encoder's own logits (z . s_fc row + bias): the ceiling;
- the user vector z against the candidates' scoring rows (s_fc weight, quantizer.item_rows output), by
  dot product and by cosine;
- z against the candidates' item-embedding rows (quantizer.item_rows input, the paper's item tokens);
- the last history item's row against the candidates' rows, in either table.

A rule near chance (1 / candidates) means tokens built from those vectors carry no usable ranking signal
by similarity: the LLM would have to learn a map per item. Also prints the mean norms of each kind.

Usage: behaviour_spaces.py --encoder RUN_OR_CHECKPOINT --samples EXPORT.tsv [--json OUT.json]
GroupLens-format data only (its raw item ids are internal ids + 1).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_encoders import load_sbtrec_checkpoint  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", required=True, help="encoder run directory or its checkpoint/ (config.yaml + model.safetensors)")
    ap.add_argument("--samples", required=True, help="sbtrec-data export --candidates output (user, history, target, candidates)")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    ckpt = a.encoder if os.path.exists(os.path.join(a.encoder, "model.safetensors")) else os.path.join(a.encoder, "checkpoint")
    m = load_sbtrec_checkpoint(ckpt).eval()
    n_items = m.num_items
    rows = [line.rstrip("\n").split("\t") for line in open(a.samples, encoding="utf-8") if line.strip()]
    if not rows or len(rows[0]) < 4:
        sys.exit(f"{a.samples}: expected 4 tab-separated columns (export with --candidates)")
    hist = [[int(x) - 1 for x in r[1].split()] for r in rows]
    target = [int(r[2]) - 1 for r in rows]
    cands = torch.tensor([[int(x) - 1 for x in r[3].split()] for r in rows])  # [S, C]
    t_idx = torch.tensor([c.index(t) for c, t in zip(cands.tolist(), target)])  # [S]
    max_len = m.max_len
    seq = torch.full((len(hist), max_len), n_items, dtype=torch.long)
    for i, h in enumerate(hist):
        h = h[-max_len:]
        seq[i, : len(h)] = torch.tensor(h)
    lengths = torch.tensor([min(len(h), max_len) for h in hist])
    with torch.no_grad():
        z = m.sequence_representation(seq, lengths)  # [S, Z]
        w_in = m.item_embeddings.weight[:n_items]  # [N, D]
        w_out, b = m.s_fc.weight, m.s_fc.bias  # [N, Z], [N]
        last = torch.tensor([h[-1] for h in hist])

        def unit(x):
            return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

        def hr1(score):  # score [S, C]
            return (score.argmax(1) == t_idx).float().mean().item()

        def against(u, table):  # u [S, X], table [N, X] -> [S, C]
            return torch.einsum("sx,scx->sc", u, table[cands])

        res = {
            "cases": len(rows),
            "chance": 1.0 / cands.shape[1],
            "encoder logits (z . output row + bias)": hr1(against(z, w_out) + b[cands]),
            "z . output rows": hr1(against(z, w_out)),
            "cos(z, output rows)": hr1(against(unit(z), unit(w_out))),
            "z . input rows": hr1(against(z, w_in)),
            "cos(z, input rows)": hr1(against(unit(z), unit(w_in))),
            "cos(last item, candidates), input rows": hr1(against(unit(w_in[last]), unit(w_in))),
            "cos(last item, candidates), output rows": hr1(against(unit(w_out[last]), unit(w_out))),
            "norms": {"z": z.norm(dim=1).mean().item(), "input rows": w_in.norm(dim=1).mean().item(),
                      "output rows": w_out.norm(dim=1).mean().item()},
        }
    width = max(len(k) for k in res)
    for k, v in res.items():
        if isinstance(v, float) and k != "chance":
            print(f"{k:<{width}}  HR@1 {v:.3f}")
    print(f"{'chance':<{width}}  HR@1 {res['chance']:.3f}  ({res['cases']} cases)")
    print("mean norms: " + ", ".join(f"{k} {v:.2f}" for k, v in res["norms"].items()))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
