#!/usr/bin/env bash
# Two processes on the same cores: one SASRec epoch (sbtrec-bench-sasrec, samples/s) and the SBT-Rec
# SBS-AO step (sbtrec-bench-sbtrec step with bench/sbtrec_step.sh's options, s/step), each alone and
# beside a copy of itself started at the same moment, per OpenMP wait setting and thread count, then a
# two-thread process beside a one-thread one. The settings are passed in the environment, which the
# programs keep (common/openmp_defaults.h); "default" is libgomp's own (GOMP_SPINCOUNT=300000).
# Usage: bench/shared_cores.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/sbtrec_common.sh
B=build/release/bin
SAS="$B/sbtrec-bench-sasrec --config configs/movielens/sasrec.yaml --set data.root=$DATA"
STEP="$B/sbtrec-bench-sbtrec step $SBT --steps 3 --warmup 1"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
key() { .venv/bin/python -c "import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
# alone / beside: CMD KEY SETTING THREADS_A THREADS_B
pair() {
  env $3 $1 --threads "$4" >"$T/a" 2>/dev/null &
  local p=$!
  local b
  b=$(env $3 $1 --threads "$5" 2>/dev/null | key "$2")
  wait $p
  echo "$(key "$2" <"$T/a") / $b"
}
for setting in GOMP_SPINCOUNT=300000 GOMP_SPINCOUNT=10000 GOMP_SPINCOUNT=1000 OMP_WAIT_POLICY=PASSIVE; do
  for th in 2 1; do
    echo "$setting, threads $th: SASRec alone $(env $setting $SAS --threads $th 2>/dev/null | key samples_per_s)," \
      "beside a copy $(pair "$SAS" samples_per_s $setting $th $th) samples/s;" \
      "SBT-Rec step alone $(env $setting $STEP --threads $th 2>/dev/null | key seconds_per_step)," \
      "beside a copy $(pair "$STEP" seconds_per_step $setting $th $th) s/step"
  done
  echo "$setting, 1 thread beside 2: SASRec $(pair "$SAS" samples_per_s $setting 1 2) samples/s;" \
    "SBT-Rec step $(pair "$STEP" seconds_per_step $setting 1 2) s/step"
done
