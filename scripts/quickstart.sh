#!/usr/bin/env bash
# Sets up (if needed), builds, and runs the main job, SBT-Rec end to end: prepare MovieLens-100K under
# the LLaRA protocol, train SASRec (the frozen encoder), fit HDSD's codebooks on it, train SBT-Rec with
# SmolLM2-135M-Instruct at a small budget (printed) and print both evaluation tables. Data: data/ml-100k/ or $SBTREC_DATA; without
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
# --overwrite: the quickstart replaces its own previous runs (fresh metrics.jsonl, not appended).
# The run directory is read back from results.json (the last stdout line with --json).
echo "== 1/3 SASRec, the frozen encoder (configs/quickstart.yaml) =="
results=$($BIN/sbtrec-train --config configs/quickstart.yaml --set data.root="$root" --overwrite --json "$@" | tail -n 1)
enc=$(printf '%s' "$results" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["output_dir"])')
$BIN/sbtrec-eval --config configs/quickstart.yaml --set data.root="$root" --checkpoint "$enc" > runs/quickstart-sasrec-table.txt

echo "== 2/3 HDSD codebooks on its item and user vectors (configs/movielens/quantize_smollm.yaml: item codes on its scoring rows) =="
$BIN/sbtrec-quantize --config configs/movielens/quantize_smollm.yaml --set data.root="$root" --encoder "$enc" \
  --out runs/quickstart-hdsd --overwrite

echo "== 3/3 SBT-Rec with SmolLM2-135M-Instruct (configs/quickstart_sbtrec.yaml) =="
budget=$($BIN/sbtrec-train --config configs/quickstart_sbtrec.yaml --set data.root="$root" --dump-config | \
  .venv/bin/python -c 'import sys, yaml; c = yaml.safe_load(sys.stdin); t, e = c["train"], c["eval"]; print("%s steps of %s prompts, lr %s, validation and test on the first %s cases" % (t["max_steps"], t["batch_size"], t["lr"], e["max_cases"]))')
echo "budget: $budget (about ten minutes on two cores)"
# sbtrec-train already evaluates the best checkpoint on the test split: its table precedes the JSON line.
train_out=$($BIN/sbtrec-train --config configs/quickstart_sbtrec.yaml --set data.root="$root" --set encoder.checkpoint="$enc" \
  --overwrite --json "$@")
results=$(printf '%s\n' "$train_out" | tail -n 1)
out=$(printf '%s' "$results" | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["output_dir"])')
echo
echo "== SASRec alone (HR@1 over 20 candidates; HR@10/NDCG@10 over all items) =="
cat runs/quickstart-sasrec-table.txt
echo "== SBT-Rec $out (generation from 20 candidates; first cases only at this budget) =="
printf '%s\n' "$train_out" | sed '$d'
printf '%s' "$results" | .venv/bin/python -c 'import json, sys; t = json.load(sys.stdin)["test"]; v = t.get("hr@1_of_valid"); print("HR@1 of valid outputs (LLaRA code'"'"'s test_hr): %s" % ("%.4f" % v if v is not None else "unmeasured (no valid output)"))'
echo "re-evaluate: $BIN/sbtrec-eval --config $out/config.yaml --checkpoint $out [--set eval.mode=likelihood]"
echo "predictions: $out/predictions.jsonl; curves: .venv/bin/python scripts/plot_metrics.py $out"
