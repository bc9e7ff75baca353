#!/usr/bin/env bash
# Greedy generation on CPU (same model shape as bench/lm_step.sh, batch 1, 32-token prompt, N new
# tokens, KV cache on both sides): sbtrec vs transformers' generate (bench/reference/lm_generate.py),
# same thread count, one run of REPEATS alternating runs per side, best of each. Last line:
# `speedup: X.XX` (tokens/s ratio).
# Usage: bench/lm_generate.sh [THREADS] [NEW_TOKENS] [REPEATS]   (defaults 2, 64 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
NEW=${2:-64}
REPEATS=${3:-3}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
.venv/bin/python bench/compare.py --key tokens_per_s --repeats "$REPEATS" --label ", threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-lm generate --threads $THREADS --new-tokens $NEW" \
  --ref ".venv/bin/python bench/reference/lm_generate.py --threads $THREADS --new-tokens $NEW"
