#!/usr/bin/env python3
"""Writes a GGUF model as a Hugging Face directory with transformers itself (from_pretrained(gguf_file=...)
then save_pretrained), so the Python side of bench/smollm_*.sh loads the same weights in seconds rather than
dequantizing the GGUF on every run. Does nothing when --out already holds the converted model."""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    stamp = os.path.join(args.out, "COMPLETE")
    if os.path.exists(stamp) and open(stamp).read() == os.path.abspath(args.gguf):
        return 0
    if not os.path.isfile(args.gguf):
        raise SystemExit(f"error: {args.gguf}: no such file (run ./scripts/setup.sh)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    d, f = os.path.split(os.path.abspath(args.gguf))
    loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    # transformers refuses to save a model it loaded from GGUF ("not serializable"): the same weights
    # go into a plain LlamaForCausalLM of the same config, without the GGUF quantization note.
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(args.out)
    AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(args.out)
    with open(stamp, "w") as fh:
        fh.write(os.path.abspath(args.gguf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
