"""Reference dequantizations for sbtrec's GGUF test: random blocks of every tensor type sbtrec reads,
dequantized by the `gguf` Python package (llama.cpp's own Python reader). Writes
<out>/blocks.safetensors with, per type T, `T.bytes` (uint8, the raw blocks) and `T.values` (float32,
gguf.quants.dequantize of those bytes). Scale fields (float16) get finite random values so the
comparison covers the arithmetic rather than NaN propagation."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Offsets of the float16 scale fields inside one block, per type (ggml-common.h layouts).
F16_FIELDS = {
    "Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2],
    "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
}


def random_blocks(qtype, name: str, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    import gguf

    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if name == "F32":
        return rng.standard_normal(n_blocks * block_elems).astype(np.float32).view(np.uint8)
    if name == "F16":
        return (rng.standard_normal(n_blocks * block_elems) * 4).astype(np.float16).view(np.uint8)
    if name == "BF16":
        f = (rng.standard_normal(n_blocks * block_elems) * 4).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        # Magnitudes as real checkpoints have them (1e-4 .. 1e-1), both signs.
        d = (rng.uniform(1e-4, 0.1, size=n_blocks) * rng.choice([-1.0, 1.0], size=n_blocks)).astype(np.float16)
        raw[:, off:off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--blocks", type=int, default=64, help="blocks per type")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import gguf
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    rng = np.random.default_rng(args.seed)
    tensors = {}
    for name in ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]:
        qtype = gguf.GGMLQuantizationType[name]
        raw = random_blocks(qtype, name, args.blocks, rng)
        values = dequantize(raw, qtype).astype(np.float32).reshape(-1)
        tensors[f"{name}.bytes"] = np.ascontiguousarray(raw)
        tensors[f"{name}.values"] = np.ascontiguousarray(values)
    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "blocks.safetensors"))
    print(f"wrote {len(tensors) // 2} types x {args.blocks} blocks to {args.out}/blocks.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
