#!/usr/bin/env python3
"""Reference CPU timing of greedy generation (KV cache, batch 1, no EOS stop) with transformers on the same small
random Llama as lm_step.py, for speed comparison with sbtrec's C++ generator at the same thread count.
Prints one JSON line: impl, new_tokens, seconds, tokens_per_s, threads, versions, config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_step  # noqa: E402  (model config and builder shared with the training benchmark)

transformers = lm_step.transformers

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    lm_step.add_model_flag(ap)
    lm_step.add_shape_flags(ap)
    args = ap.parse_args(argv)
    if args.threads < 1 or args.new_tokens < 1 or args.prompt_tokens < 1:
        ap.error("--threads >= 1, --new-tokens >= 1 and --prompt-tokens >= 1 required")
    torch.set_num_threads(args.threads)

    model, cfg = lm_step.build_model(args, args.seed)
    model.eval()
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(3, cfg["vocab_size"], (1, args.prompt_tokens), generator=gen)
    # eos_token_id=None removes the EOS stopping criterion, so every call makes exactly new_tokens tokens.
    kw = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=args.new_tokens,
              do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=cfg["pad_token_id"])

    with torch.no_grad():
        model.generate(prompt, **kw)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(prompt, **kw)
        seconds = time.perf_counter() - t0
    made = out.shape[1] - args.prompt_tokens
    if made != args.new_tokens:
        raise SystemExit(f"error: generate made {made} tokens, expected {args.new_tokens}")
    print(json.dumps({"impl": "transformers", "new_tokens": made, "prompt_tokens": args.prompt_tokens, "batch": 1, "dtype": args.dtype,
                      "seconds": seconds, "tokens_per_s": made / seconds, "threads": args.threads,
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "config": dict(cfg, decoding="greedy, KV cache, no EOS stop")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
