#!/usr/bin/env python3
"""PyTorch reference timing of one SASRec training epoch (BCE, one sampled negative per row, Adam lr 1e-3),
for speed comparison with sbtrec's C++ trainer on the same samples file and batch size.
Prints one JSON line: impl, samples, steps, seconds, samples_per_s, final_loss, threads, torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

# The model and training step live in scripts/reference_encoders.py (shared with the C++ parity tests).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import reference_encoders as ref  # noqa: E402

MAX_LEN = 10


def read_samples(path: str, num_items: int, id_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parse `user_id<TAB>h1 ... hk<TAB>target` lines into right-padded [S, 10] seq, lengths, targets."""
    seqs, lens, targets = [], [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"error: {path}: cannot open ({e.strerror}); pass a samples .tsv with --samples")
    with f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise SystemExit(f"error: {path}:{lineno}: expected 3 tab-separated fields "
                                 f"(user_id, history, target), got {len(parts)}")
            try:
                hist = [int(x) - id_offset for x in parts[1].split()]
                tgt = int(parts[2]) - id_offset
            except ValueError:
                raise SystemExit(f"error: {path}:{lineno}: non-integer item id") from None
            if not 1 <= len(hist) <= MAX_LEN:
                raise SystemExit(f"error: {path}:{lineno}: history length {len(hist)} not in [1, {MAX_LEN}]; "
                                 f"filter the samples file first")
            bad = [i for i in hist + [tgt] if not 0 <= i < num_items]
            if bad:
                raise SystemExit(f"error: {path}:{lineno}: item id {bad[0]} outside [0, {num_items}); "
                                 f"check --num-items")
            seqs.append(hist + [num_items] * (MAX_LEN - len(hist)))
            lens.append(len(hist))
            targets.append(tgt)
    if not seqs:
        raise SystemExit(f"error: {path}: no samples")
    return torch.tensor(seqs, dtype=torch.long), torch.tensor(lens, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", required=True, help="samples .tsv (user_id, history, target), already filtered")
    ap.add_argument("--num-items", type=int, required=True)
    ap.add_argument("--id-offset", type=int, default=0,
                    help="subtracted from every id (1 for MovieLens exports, whose raw ids start at 1)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-steps", type=int, default=5)
    args = ap.parse_args(argv)
    if args.num_items < 2 or args.batch_size < 1 or args.threads < 1 or args.warmup_steps < 0:
        ap.error("--num-items >= 2, --batch-size >= 1, --threads >= 1 and --warmup-steps >= 0 required")

    seq, lengths, target = read_samples(args.samples, args.num_items, args.id_offset)  # not timed
    s = seq.shape[0]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = ref.SASRec(args.num_items)
    opt = ref.make_optimizer(model)
    model.train()

    def batches(perm: torch.Tensor):
        for i in range(0, s, args.batch_size):
            idx = perm[i:i + args.batch_size]
            yield seq[idx], lengths[idx], target[idx]

    # Warm-up (allocator, kernels, Adam state) on a separate shuffle so the timed epoch is a full one.
    done = 0
    while done < args.warmup_steps:
        for b in batches(torch.randperm(s, generator=gen)):
            ref.bce_train_step(model, opt, *b, generator=gen)
            done += 1
            if done >= args.warmup_steps:
                break

    perm = torch.randperm(s, generator=gen)
    steps = 0
    loss = float("nan")
    t0 = time.perf_counter()
    for b in batches(perm):
        loss = ref.bce_train_step(model, opt, *b, generator=gen)
        steps += 1
    t = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "samples": s, "steps": steps, "seconds": t, "samples_per_s": s / t,
                      "final_loss": loss, "threads": args.threads, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
