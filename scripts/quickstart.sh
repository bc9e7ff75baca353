#!/usr/bin/env bash
# Sets up (if needed), builds, and runs the main job: prepare MovieLens-100K under the LLaRA protocol,
# train SASRec, evaluate it, print the metrics table. Data: data/ml-100k/ or $SBTREC_DATA; without
# either it falls back, loudly, to a synthetic GroupLens-format dataset the project generates.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
BIN=build/release/bin
root=${SBTREC_DATA:-data/ml-100k}
if [ ! -f "$root/u.data" ] || [ ! -f "$root/u.item" ]; then
  cat >&2 <<MSG

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! MovieLens-100K not found at '$root' (need u.data and u.item).
!! Get it from https://grouplens.org/datasets/movielens/100k/ (ml-100k.zip), unpack it to
!! data/ml-100k/, or set SBTREC_DATA to the folder that holds u.data and u.item.
!! FALLING BACK TO A SYNTHETIC DATASET: the numbers below are NOT MovieLens results.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

MSG
  root=runs/quickstart-synthetic-data
  $BIN/sbtrec-data synth --out "$root"
fi
$BIN/sbtrec-data stats --config configs/quickstart.yaml --set data.root="$root"
# --overwrite: the quickstart replaces its own previous run (a fresh metrics.jsonl, not appended).
# The run directory is read back from results.json (the last stdout line with --json).
results=$($BIN/sbtrec-train --config configs/quickstart.yaml --set data.root="$root" --overwrite --json "$@" | tail -n 1)
out=$(printf '%s' "$results" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["output_dir"])')
echo
echo "== evaluation of $out (HR@1 over 20 candidates; HR@10/NDCG@10 over all items) =="
$BIN/sbtrec-eval --config configs/quickstart.yaml --set data.root="$root" "$@" --checkpoint "$out"
echo "curves: .venv/bin/python scripts/plot_metrics.py $out"
