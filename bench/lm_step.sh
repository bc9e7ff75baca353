#!/usr/bin/env bash
# LoRA training step on CPU (8 layers, width 512, seq 256, batch 4, fp32; LoRA r 8 on all seven
# projections, AdamW): sbtrec vs transformers + PEFT (bench/reference/lm_step.py), same thread count,
# one run. Last line: `speedup: X.XX` (reference seconds per step / sbtrec seconds per step).
# Usage: bench/lm_step.sh [THREADS] [STEPS]   (defaults 2 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
STEPS=${2:-3}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
cpp=$(build/release/bin/sbtrec-bench-lm step --threads "$THREADS" --steps "$STEPS" --warmup 1 2>/dev/null | tail -n 1)
py=$(.venv/bin/python bench/reference/lm_step.py --threads "$THREADS" --steps "$STEPS" --warmup 1 | tail -n 1)
echo "$cpp"
echo "$py"
.venv/bin/python -c "import json,sys; c=json.loads(sys.argv[1]); p=json.loads(sys.argv[2]); print(f\"seconds/step: sbtrec {c['seconds_per_step']:.3f}, transformers+peft {p['seconds_per_step']:.3f} (threads {c['threads']})\"); print(f\"speedup: {p['seconds_per_step'] / c['seconds_per_step']:.2f}\")" "$cpp" "$py"
