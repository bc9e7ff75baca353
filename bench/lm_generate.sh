#!/usr/bin/env bash
# Greedy generation on CPU (same model shape as bench/lm_step.sh, batch 1, 32-token prompt, N new
# tokens, KV cache on both sides): sbtrec vs transformers' generate (bench/reference/lm_generate.py),
# same thread count, one run. Last line: `speedup: X.XX` (tokens/s ratio).
# Usage: bench/lm_generate.sh [THREADS] [NEW_TOKENS]   (defaults 2 and 64)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
NEW=${2:-64}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
cpp=$(build/release/bin/sbtrec-bench-lm generate --threads "$THREADS" --new-tokens "$NEW" 2>/dev/null | tail -n 1)
py=$(.venv/bin/python bench/reference/lm_generate.py --threads "$THREADS" --new-tokens "$NEW" | tail -n 1)
echo "$cpp"
echo "$py"
.venv/bin/python -c "import json,sys; c=json.loads(sys.argv[1]); p=json.loads(sys.argv[2]); print(f\"tokens/s: sbtrec {c['tokens_per_s']:.1f}, transformers {p['tokens_per_s']:.1f} (threads {c['threads']})\"); print(f\"speedup: {c['tokens_per_s'] / p['tokens_per_s']:.2f}\")" "$cpp" "$py"
