#!/usr/bin/env bash
# One SBS-AO training step of SBT-Rec on SmolLM2-135M-Instruct at batch 4 (the first 4 MovieLens
# training samples as hybrid prompts, 20 candidates, user token, HDSD 3 x 128 on LLaRA's SASRec,
# MLP aligners, LoRA r 8 on all seven projections, Adam over codebooks / aligners / LoRA): sbtrec vs
# torch + transformers + PEFT on the very same batch and tensors (dumped by the C++ side), same
# threads, REPEATS alternating runs per side, best of each. Last line: `speedup: X.XX`.
# Usage: bench/sbtrec_step.sh [THREADS] [STEPS] [REPEATS]   (defaults 2, 3, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
STEPS=${2:-3}
REPEATS=${3:-3}
source bench/sbtrec_common.sh
build/release/bin/sbtrec-bench-sbtrec step $SBT --threads "$THREADS" --steps 1 --warmup 0 --dump "$W/step" >/dev/null 2>&1
.venv/bin/python bench/compare.py --key seconds_per_step --lower-is-better --repeats "$REPEATS" \
  --label ", SBT-Rec SBS-AO step, SmolLM2-135M fp32, batch 4, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sbtrec step $SBT --threads $THREADS --steps $STEPS --warmup 1" \
  --ref ".venv/bin/python bench/reference/sbtrec_step.py --model $HF --inputs $W/step --threads $THREADS --steps $STEPS --warmup 1"
