#!/usr/bin/env bash
# LoRA training step on CPU (8 layers, width 512, seq 256, batch 4, fp32; LoRA r 8 on all seven
# projections, AdamW): sbtrec vs transformers + PEFT (bench/reference/lm_step.py), same thread count,
# one run of REPEATS alternating runs per side, best of each. Last line: `speedup: X.XX` (reference
# seconds per step / sbtrec seconds per step).
# Usage: bench/lm_step.sh [THREADS] [STEPS] [REPEATS]   (defaults 2, 3 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
STEPS=${2:-3}
REPEATS=${3:-3}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
.venv/bin/python bench/compare.py --key seconds_per_step --lower-is-better --repeats "$REPEATS" --label ", threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-lm step --threads $THREADS --steps $STEPS --warmup 1" \
  --ref ".venv/bin/python bench/reference/lm_step.py --threads $THREADS --steps $STEPS --warmup 1"
