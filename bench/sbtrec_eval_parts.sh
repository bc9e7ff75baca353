#!/usr/bin/env bash
# Where SBT-Rec's evaluation by generation spends its time (BENCHMARKS.md, issue 23 §6), on the
# bench's cases (bench/sbtrec_eval.sh's config, SmolLM2-135M, float32):
#   1. eval.sort_by_length x eval.shared_prefix, ROUNDS alternating rounds of the four settings (cases/s);
#   2. per batch: real prompt positions, positions after padding, the shared prefix (SPDLOG_LEVEL=debug);
#   3. the prefill's share: the same cases with generation.max_new_tokens=1 and with the default.
# Usage: bench/sbtrec_eval_parts.sh [THREADS] [CASES] [ROUNDS]   (defaults 2, 32, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
CASES=${2:-32}
ROUNDS=${3:-2}
source bench/sbtrec_common.sh
B="build/release/bin/sbtrec-bench-sbtrec generate $SBT --threads $THREADS --cases $CASES"
field() { .venv/bin/python -c "import json,sys; print('%.3f' % json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
for round in $(seq "$ROUNDS"); do
  for sort in false true; do
    for prefix in false true; do
      echo "round $round sort_by_length=$sort shared_prefix=$prefix: $($B --set eval.sort_by_length=$sort --set eval.shared_prefix=$prefix 2>/dev/null | field cases_per_s) cases/s"
    done
  done
done
for sort in false true; do
  SPDLOG_LEVEL=debug $B --set eval.sort_by_length=$sort 2>&1 >/dev/null | grep "generation batch" | sed "s/^.*generation batch/sort_by_length=$sort: batch/"
done
for m in 1 32; do echo "generation.max_new_tokens=$m: $($B --set generation.max_new_tokens=$m 2>/dev/null | field seconds) s"; done
