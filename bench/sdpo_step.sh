#!/usr/bin/env bash
# One S-DPO training step of SBT-Rec on SmolLM2-135M-Instruct (issue 24): the first BATCH MovieLens
# training samples as hybrid prompts (20 candidates, user token, HDSD 3 x 128 on LLaRA's SASRec, MLP
# aligners, LoRA r 8 on all seven projections), each with its target's answer and NEG other candidates'
# answers, the policy with gradient and a frozen reference, Adam over codebooks / aligners / LoRA:
# sbtrec (each prompt run once for all its answers, llm/shared_prompt.h) vs torch + transformers + PEFT
# as TRL's DPO trainers run it (one row per prompt + answer, bench/reference/sdpo_step.py) on the same
# batch, same threads, REPEATS alternating runs per side, best of each. Last line: `speedup: X.XX`.
# Usage: bench/sdpo_step.sh [THREADS] [STEPS] [REPEATS] [BATCH] [NEG]   (defaults 2, 3, 2, 4, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
STEPS=${2:-3}
REPEATS=${3:-2}
BATCH=${4:-4}
NEG=${5:-3}
source bench/sbtrec_common.sh
build/release/bin/sbtrec-bench-sbtrec sdpo-step $SBT --threads "$THREADS" --steps 1 --warmup 0 --batch "$BATCH" \
  --negatives "$NEG" --dump "$W/sdpo" >/dev/null 2>&1
.venv/bin/python bench/compare.py --key seconds_per_step --lower-is-better --repeats "$REPEATS" \
  --label ", S-DPO step, SmolLM2-135M fp32, batch $BATCH x (1 + $NEG answers), threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sbtrec sdpo-step $SBT --threads $THREADS --steps $STEPS --warmup 1 --batch $BATCH --negatives $NEG" \
  --ref ".venv/bin/python bench/reference/sdpo_step.py --model $HF --inputs $W/sdpo --threads $THREADS --steps $STEPS --warmup 1"
