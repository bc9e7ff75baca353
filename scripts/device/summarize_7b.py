"""Summarises scripts/device/bench_7b.sh: tokens/s, model FLOPs utilisation and peak memory of sbtrec and
transformers + PEFT. MFU counts the work LoRA training on a frozen base needs: 4 N FLOPs per token for the
matmul weights (forward 2N + input-gradient backward 2N; no weight gradients) plus attention scores
(forward 4 L T D per token, backward 8 L T D), against 989 TFLOP/s dense bf16 (H100/H200 SXM)."""
import json
import sys

L, D, F, V, T, B = 32, 4096, 11008, 32000, 512, 4
N = L * (4 * D * D + 3 * D * F) + D * V  # matmul weights incl. lm_head
FLOPS_PER_TOKEN = 4 * N + 12 * L * T * D
PEAK = 989e12


def main(paths: list[str]) -> int:
    print(f"{'impl':<18} {'tokens/s':>9} {'MFU':>6} {'peak memory GiB':>16}")
    for p in paths:
        try:
            r = json.load(open(p))
        except (OSError, json.JSONDecodeError) as e:
            print(f"{p}: unreadable ({e})")
            continue
        if "tokens_per_s" not in r:
            print(f"{r.get('impl', p):<18} failed: {r.get('error', 'no result')}")
            continue
        mfu = r["tokens_per_s"] * FLOPS_PER_TOKEN / PEAK
        mem = r.get("peak_memory_bytes")
        print(f"{r['impl']:<18} {r['tokens_per_s']:>9.0f} {mfu:>6.1%} {mem / 2**30 if mem else float('nan'):>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
