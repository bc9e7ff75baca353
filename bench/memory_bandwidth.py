#!/usr/bin/env python3
"""Host memory read bandwidth as PyTorch sees it: a 256 MB sum (a plain streaming read) and a 65 MB
row-major float32 matrix-vector product (torch's sgemv, Llama's lm_head at batch 1), in GB/s.
Usage: memory_bandwidth.py [THREADS]. Context for the decoding figures in BENCHMARKS.md."""

import sys
import time

import torch


def rate(fn, nbytes: int, n: int = 20) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return nbytes * n / (time.perf_counter() - t0) / 1e9


def main() -> int:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    x = torch.randn(64 * 1024 * 1024)
    w, v = torch.randn(32000, 512), torch.randn(512)
    print(f"threads {threads}: sum {rate(x.sum, x.numel() * 4):.1f} GB/s, "
          f"sgemv {rate(lambda: w @ v, w.numel() * 4):.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
