#!/usr/bin/env bash
# HDSD's code-tuple options side by side (issue 24 §3): sbtrec-quantize on one dataset's frozen SASRec
# (LLaRA's, imported) for quantizer.collisions keep | index x quantizer.normalize false | true, on the
# paper's item rows (configs/<dataset>/quantize.yaml) and the SmolLM2 configs' scoring rows
# (quantize_smollm.yaml), then one markdown table of their stats.json (scripts/quantizer_table.py):
# collision rate, largest shared tuple, per-level perplexity, relative error, genre purity.
# Usage: scripts/quantizer_options.sh movielens|lastfm OUT   (needs ../shared; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: scripts/quantizer_options.sh movielens|lastfm OUT}
OUT=${2:?usage: scripts/quantizer_options.sh movielens|lastfm OUT}
SHARED=${SBTREC_SHARED:-../shared}
mkdir -p "$OUT"
case $DATASET in
  movielens)
    DATA="--set data.root=$SHARED/data/ml-100k"
    CKPT=$SHARED/models/llara-rec-models/movielens.pt ;;
  lastfm)
    if [ ! -f "$OUT/data/dataset.json" ]; then
      .venv/bin/python scripts/import_llara_data.py --src "$SHARED/data/llara/lastfm" --out "$OUT/data.tmp" \
        --tags "$SHARED/data/hetrec2011-lastfm-2k" >/dev/null
      mv "$OUT/data.tmp" "$OUT/data"
    fi
    DATA="--set data.root=$OUT/data"
    CKPT=$SHARED/models/llara-rec-models/lastfm.pt ;;
  *) echo "error: dataset must be movielens or lastfm, got '$DATASET'" >&2; exit 2 ;;
esac
[ -f "$CKPT" ] || { echo "error: $CKPT not found (LLaRA's SASRec checkpoints, see $SHARED/models/llara-rec-models/SOURCE.md)" >&2; exit 1; }
[ -f "$OUT/encoder/model.safetensors" ] || .venv/bin/python scripts/import_llara_checkpoint.py --checkpoint "$CKPT" --out "$OUT/encoder" >/dev/null
DIRS=()
for rows in quantize quantize_smollm; do
  for collisions in keep index; do
    for normalize in false true; do
      d="$OUT/$rows-$collisions-normalize_$normalize"
      if [ ! -f "$d/stats.json" ]; then
        echo "sbtrec-quantize: $rows, collisions $collisions, normalize $normalize" >&2
        build/release/bin/sbtrec-quantize --config "configs/$DATASET/$rows.yaml" $DATA --encoder "$OUT/encoder" \
          --set quantizer.collisions=$collisions --set quantizer.normalize=$normalize --out "$d" --overwrite >"$d.log" 2>&1 ||
          { cat "$d.log" >&2; exit 1; }
      fi
      DIRS+=("$d")
    done
  done
done
.venv/bin/python scripts/quantizer_table.py "${DIRS[@]}"
