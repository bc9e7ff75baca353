#!/usr/bin/env bash
# Greedy decoding on SmolLM2-135M-Instruct (the default model): batch 1, a 300-token prompt, 32 new
# tokens (prefill + decode, KV cache, no EOS stop), tokens/s. sbtrec (weights from the GGUF) vs
# transformers (the same weights as a Hugging Face directory written by transformers), same dtype and
# thread count, REPEATS alternating runs per side, best of each. Last line: `speedup: X.XX`.
# Usage: bench/smollm_generate.sh [THREADS] [DTYPE fp32|bf16] [REPEATS]   (defaults 2, fp32, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
DTYPE=${2:-fp32}
REPEATS=${3:-3}
source bench/smollm_common.sh
SHAPE="--threads $THREADS --prompt-tokens 300 --new-tokens 32 --dtype $DTYPE"
.venv/bin/python bench/compare.py --key tokens_per_s --repeats "$REPEATS" \
  --label ", SmolLM2-135M $DTYPE, prompt 300, 32 new, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-lm generate --model $GGUF $SHAPE" \
  --ref ".venv/bin/python bench/reference/lm_generate.py --model $HF $SHAPE"
