#!/usr/bin/env python3
"""Host memory of loading a Llama-2-7B-shaped checkpoint: writes random float16 weights in Hugging
Face's layout (config.json + 2 safetensors shards + index, as the real Llama-2-7B-hf), then runs
`sbtrec-lm logits --dtype bf16` on it (CPU target: every tensor converted float16 -> bfloat16) while
sampling the process's anonymous resident memory (RssAnon) every 50 ms. Prints the peak next to the
size of the bf16 model: a loader that kept a second host copy would peak near 2x.
Usage: load_memory.py --dir DIR [--keep] [--layers 32]   (about 13.5 GB of disk for 32 layers)"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file

SHAPE = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
             vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
             architectures=["LlamaForCausalLM"], model_type="llama", torch_dtype="float16")


def tensors(layers: int):
    d, f, v = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["vocab_size"]
    yield "model.embed_tokens.weight", (v, d)
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield p + f"self_attn.{n}.weight", (d, d)
        yield p + "mlp.gate_proj.weight", (f, d)
        yield p + "mlp.up_proj.weight", (f, d)
        yield p + "mlp.down_proj.weight", (d, f)
        yield p + "input_layernorm.weight", (d,)
        yield p + "post_attention_layernorm.weight", (d,)
    yield "model.norm.weight", (d,)
    yield "lm_head.weight", (v, d)


def write_checkpoint(out: str, layers: int) -> int:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(SHAPE, num_hidden_layers=layers), f)
    names = list(tensors(layers))
    half = len(names) // 2
    gen = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for shard, part in enumerate((names[:half], names[half:])):
        fname = f"model-{shard + 1:05d}-of-00002.safetensors"
        data = {}
        for name, shape in part:
            t = torch.ones(shape, dtype=torch.float16) if len(shape) == 1 else \
                (torch.randn(shape, generator=gen) * 0.02).to(torch.float16)
            data[name] = t
            weight_map[name] = fname
            total += t.numel() * 2
        save_file(data, os.path.join(out, fname), metadata={"format": "pt"})
        del data
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    return total


def rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="checkpoint directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--binary", default="build/release/bin/sbtrec-lm")
    args = ap.parse_args()
    out = args.dir or tempfile.mkdtemp(prefix="llama7b-")
    try:
        t0 = time.time()
        total = write_checkpoint(out, args.layers)
        print(f"wrote {total / 1e9:.2f} GB of float16 weights to {out} in {time.time() - t0:.0f} s", flush=True)
        logits = os.path.join(out, "logits.safetensors")
        cmd = [args.binary, "logits", "--model", out, "--ids", "1 450 4996", "--dtype", "bf16", "--out", logits]
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, rss_anon_kb(proc.pid))
            time.sleep(0.05)
        err = proc.stderr.read()
        if proc.returncode != 0:
            print(f"error: {' '.join(cmd)} exited {proc.returncode}:\n{err}", file=sys.stderr)
            return 1
        bf16 = total  # float16 and bfloat16 have the same size
        print(json.dumps({"model_bf16_bytes": bf16, "peak_rss_anon_bytes": peak * 1024,
                          "peak_over_model": peak * 1024 / bf16, "seconds": round(time.time() - t0, 1),
                          "command": " ".join(cmd)}))
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
