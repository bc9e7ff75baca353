"""Float32 GEMM throughput of the two CPU libraries LibTorch carries, on SmolLM2-135M's shapes: torch's
default (torch.nn.functional.linear / torch.mm: MKL's sgemm on x86 wheels) against oneDNN's matmul
(torch.ops.mkldnn._linear_pointwise, what sbtrec's llm.cpu_gemm: onednn calls), plus bf16 for scale.
Rows M: 8 (decoding a batch), 512 (a training batch's tokens), 2200 (a prefill batch of 8 prompts).
Shapes (in, out): the MLP's up (576, 1536) and down (1536, 576), and the output layer (576, 49152);
'g W' is the input gradient (the transposed weight, no copy). Prints GFLOP/s (higher is better) and
the CPU's vector-extension flags.
Usage: .venv/bin/python bench/cpu_gemm.py [THREADS]   (default 2)
"""
import sys
import time

import torch


def gflops(f, flops, n=20):
    for _ in range(3):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return flops / ((time.perf_counter() - t) / n) / 1e9


def onednn(x, w):
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    flags = sorted({f for line in open("/proc/cpuinfo") if line.startswith("flags") for f in line.split()
                    if f.startswith(("avx", "amx"))})
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu flags: {' '.join(flags)}")
    print(f"{'M':>5} {'in':>5} {'out':>6} | {'aten x W^T':>10} {'onednn x W^T':>12} | {'aten g W':>9} {'onednn g W':>10} | {'bf16 aten':>9}")
    for m in (8, 512, 2200):
        for i, o in ((576, 1536), (1536, 576), (576, 49152)):
            x, w, g = torch.randn(m, i), torch.randn(o, i), torch.randn(m, o)
            fl = 2 * m * i * o
            xb, wb = x.bfloat16(), w.bfloat16()
            r = [gflops(lambda: torch.nn.functional.linear(x, w), fl), gflops(lambda: onednn(x, w), fl),
                 gflops(lambda: torch.mm(g, w), fl), gflops(lambda: onednn(g, w.t()), fl),
                 gflops(lambda: torch.nn.functional.linear(xb, wb), fl)]
            print(f"{m:>5} {i:>5} {o:>6} | {r[0]:>10.1f} {r[1]:>12.1f} | {r[2]:>9.1f} {r[3]:>10.1f} | {r[4]:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
