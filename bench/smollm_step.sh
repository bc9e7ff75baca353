#!/usr/bin/env bash
# LoRA training step on SmolLM2-135M-Instruct (the default model) at SBT-Rec's shape: batch 4 x 320
# tokens, labels on the last 16 tokens of each row, LoRA r 8 (alpha 32, dropout 0.1) on all seven
# projections, AdamW. sbtrec (weights from the GGUF) vs transformers + PEFT (the same weights, written
# once as a Hugging Face directory by transformers), same dtype and thread count, REPEATS alternating
# runs per side, best of each. Last line: `speedup: X.XX` (reference s/step / sbtrec s/step).
# Usage: bench/smollm_step.sh [THREADS] [DTYPE fp32|bf16] [STEPS] [REPEATS]   (defaults 2, fp32, 3, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
DTYPE=${2:-fp32}
STEPS=${3:-3}
REPEATS=${4:-3}
source bench/smollm_common.sh
SHAPE="--threads $THREADS --steps $STEPS --warmup 1 --batch 4 --seq 320 --label-tokens 16 --dtype $DTYPE"
.venv/bin/python bench/compare.py --key seconds_per_step --lower-is-better --repeats "$REPEATS" \
  --label ", SmolLM2-135M $DTYPE, batch 4 x 320, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-lm step --model $GGUF $SHAPE" \
  --ref ".venv/bin/python bench/reference/lm_step.py --model $HF $SHAPE"
