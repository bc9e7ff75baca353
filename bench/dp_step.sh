#!/usr/bin/env bash
# Data-parallel SBS-AO training on this machine's cores: the same global batch (GLOBAL prompts per
# step, real MovieLens hybrid prompts, SmolLM2-135M fp32) trained by 1 process with all CORES threads
# and by NPROC Gloo processes with CORES / NPROC threads each (sbtrec-train --nproc), STEPS steps each,
# the two alternated REPEATS times. Reports each run's mean seconds per step over steps 2..STEPS (from
# metrics.jsonl's tokens_per_s and the step's token count, so loading and evaluation are left out) and
# the ratio. On one machine this measures the cost of the all-reduce and of splitting the cores, not
# a scale-out: with one GPU or machine per rank each rank would bring its own compute.
# Usage: bench/dp_step.sh [NPROC] [GLOBAL] [STEPS] [REPEATS] [CORES]   (defaults 2, 4, 6, 2, nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
NPROC=${1:-2}
GLOBAL=${2:-4}
STEPS=${3:-6}
REPEATS=${4:-2}
CORES=${5:-$(nproc)}
source bench/sbtrec_common.sh
[ $((GLOBAL % NPROC)) -eq 0 ] || { echo "error: GLOBAL ($GLOBAL) must be a multiple of NPROC ($NPROC)" >&2; exit 1; }
COMMON="$SBT --set train.max_steps=$STEPS --set train.log_every=1 --set eval.max_cases=2 --set eval.max_val_cases=2 --overwrite"
run() {  # run NAME PROCS: prints the mean tokens/s of steps 2..STEPS
  local name=$1 procs=$2 out=build/bench/dp/$1
  local extra=""
  [ "$procs" -gt 1 ] && extra="--nproc $procs"
  build/release/bin/sbtrec-train $COMMON --set threads=$((CORES / procs)) --set train.batch_size=$((GLOBAL / procs)) \
    --set output_dir=$out $extra >/dev/null 2>"$out.log" || { tail -20 "$out.log" >&2; exit 1; }
  .venv/bin/python - "$out/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
train = [r for r in rows if r.get("split") == "train" and r.get("step", 0) >= 2]
# tokens_per_s of one step (log_every 1) = its tokens / its seconds; the run's rate = tokens / seconds
print(f"steps 2..{max(r['step'] for r in train)}: mean {sum(r['tokens_per_s'] for r in train) / len(train):.1f} tokens/s")
PY
}
mkdir -p build/bench/dp
for i in $(seq "$REPEATS"); do
  echo "1 process x $CORES threads x batch $GLOBAL: $(run one 1)"
  echo "$NPROC processes x $((CORES / NPROC)) threads x batch $((GLOBAL / NPROC)): $(run dp "$NPROC")"
done
