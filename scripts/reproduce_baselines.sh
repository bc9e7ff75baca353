#!/usr/bin/env bash
# Reproduces LLaRA's baseline rows: trains and evaluates SASRec, GRU4Rec and Caser over 5 seeds on
# MovieLens-100K (and LastFM when imported into data/lastfm), then evaluates LLaRA's own pretrained
# encoders over the same 5 candidate seeds; prints mean and 95% confidence interval of test HR@1.
# Seed s fixes both the training run and the candidate sets (eval.candidate_seed = s), so within a
# seed every model is scored on the same candidates.
# Usage: [SEEDS="1 2 3 4 5"] [THREADS=N] scripts/reproduce_baselines.sh [movielens|lastfm ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
BIN=build/release/bin
PY=.venv/bin/python
SHARED=${SBTREC_SHARED:-../shared}
OUT=${SBTREC_REPRO_DIR:-runs/reproduce}
SEEDS=${SEEDS:-"1 2 3 4 5"}
THREADS=${THREADS:-0}   # torch threads per run; 0 = torch default
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(movielens lastfm)
mkdir -p "$OUT"
results="$OUT/results.tsv"
: > "$results"

ml_root=${SBTREC_DATA:-data/ml-100k}
[ -f "$ml_root/u.data" ] || ml_root="$SHARED/data/ml-100k"
if [[ " ${datasets[*]} " == *" lastfm "* ]] && [ ! -f data/lastfm/dataset.json ]; then
  $PY scripts/import_llara_data.py --src "$SHARED/data/llara/lastfm" --out data/lastfm
fi

for ds in "${datasets[@]}"; do
  root=$([ "$ds" = movielens ] && echo "$ml_root" || echo data/lastfm)
  for model in sasrec gru4rec caser; do
    for seed in $SEEDS; do
      run="$OUT/$ds-$model-s$seed"
      if [ ! -f "$run/results.json" ]; then
        $BIN/sbtrec-train --config "configs/$ds/$model.yaml" --set data.root="$root" --set seed="$seed" \
          --set eval.candidate_seed="$seed" --set output_dir="$run" --set threads="$THREADS" > "$run.log" 2>&1 || { tail "$run.log"; exit 1; }
      fi
      hr=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['test']['hr@1'])" "$run/results.json")
      printf '%s\ttrained\t%s\t%s\t%s\n' "$ds" "$model" "$seed" "$hr" >> "$results"
    done
  done
  # LLaRA's pretrained encoders: deterministic weights, so the seeds vary the candidate sets only.
  for pair in "movielens:sasrec:movielens" "movielens:gru4rec:GRU_movielens" "movielens:caser:Caser_movielens" "lastfm:sasrec:lastfm"; do
    IFS=: read -r pds model file <<<"$pair"
    [ "$pds" = "$ds" ] || continue
    ckpt="$OUT/llara-$file"
    [ -f "$ckpt/model.safetensors" ] || $PY scripts/import_llara_checkpoint.py --checkpoint "$SHARED/models/llara-rec-models/$file.pt" --out "$ckpt" >/dev/null
    for seed in $SEEDS; do
      hr=$($BIN/sbtrec-eval --config "configs/$ds/$model.yaml" --set data.root="$root" --set eval.candidate_seed="$seed" \
             --checkpoint "$ckpt" --json 2>/dev/null | tail -n 1 | $PY -c "import json,sys; print(json.load(sys.stdin)['hr@1'])")
      printf '%s\timported\t%s\t%s\t%s\n' "$ds" "$model" "$seed" "$hr" >> "$results"
    done
  done
done
$PY scripts/summarize_baselines.py "$results"
