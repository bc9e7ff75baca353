#!/usr/bin/env python3
"""Rank-8 GEMMs of a LoRA backward pass in the two operand layouts (torch's MKL on this CPU): the
product with B^T-shaped weights and the weight gradient, for a 1024-row activation. Shows why
src/llm/lora.cpp passes B column-major and forms B's gradient as (u^T g)^T. Prints ms per call.
Usage: lora_gemm_layouts.py [THREADS]"""

import sys
import time

import torch


def ms(fn, n: int = 200) -> float:
    for _ in range(5):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> int:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    for out_features in (512, 1376):
        g = torch.randn(1024, out_features)  # d loss / d y   [N, O]
        b = torch.randn(out_features, 8)      # lora_B.weight [O, r]
        u = torch.randn(1024, 8)              # s * A x       [N, r]
        b_col = b.t().contiguous().t()
        print(f"O={out_features}: g@B {ms(lambda: torch.mm(g, b)):.3f} ms, g@B(column-major) "
              f"{ms(lambda: torch.mm(g, b_col)):.3f} ms | g^T@u {ms(lambda: torch.mm(g.t(), u)):.3f} ms, "
              f"(u^T@g)^T {ms(lambda: torch.mm(u.t(), g).t()):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
