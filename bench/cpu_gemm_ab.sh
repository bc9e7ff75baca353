#!/usr/bin/env bash
# llm.cpu_gemm aten vs onednn in the same binary, alternating: one SBS-AO training step
# (bench/sbtrec_step.sh's batch) and evaluation by generation (bench/sbtrec_eval.sh's 32 cases).
# Prints one JSON line per run, prefixed with the round and the setting.
# Usage: bench/cpu_gemm_ab.sh [THREADS] [ROUNDS]   (defaults 2, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
ROUNDS=${2:-2}
source bench/sbtrec_common.sh
build/release/bin/sbtrec-bench-sbtrec step $SBT --threads "$THREADS" --steps 1 --warmup 0 >/dev/null 2>&1
for r in $(seq "$ROUNDS"); do
  for g in aten onednn; do
    echo "round $r $g step: $(build/release/bin/sbtrec-bench-sbtrec step $SBT --set llm.cpu_gemm=$g --threads "$THREADS" --steps 3 --warmup 1 2>/dev/null | tail -1)"
    echo "round $r $g generate: $(build/release/bin/sbtrec-bench-sbtrec generate $SBT --set llm.cpu_gemm=$g --threads "$THREADS" --cases 32 2>/dev/null | tail -1)"
  done
done
