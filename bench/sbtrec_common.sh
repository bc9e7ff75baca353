# Sourced by bench/sbtrec_{step,eval}.sh: the SmolLM2 files of bench/smollm_common.sh, plus LLaRA's
# MovieLens SASRec (imported) and HDSD codebooks fitted on it (3 x 128), once, under build/bench/sbtrec/,
# and the sbtrec-bench-sbtrec options that point the paper's SmolLM2 SBT-Rec config at them (the Python
# reference implements the paper's method, ablations/sbtrec_smollm_paper.yaml, not the shipped defaults).
source bench/smollm_common.sh
DATA=${SBTREC_DATA:-../shared/data/ml-100k}
LLARA=${SBTREC_LLARA_SASREC:-../shared/models/llara-rec-models/movielens.pt}
W=build/bench/sbtrec
for f in "$DATA/u.data" "$LLARA"; do
  [ -f "$f" ] || { echo "error: $f not found (MovieLens-100K and LLaRA's SASRec checkpoint, see ../shared)" >&2; exit 1; }
done
if [ ! -f "$W/enc/model.safetensors" ]; then
  .venv/bin/python scripts/import_llara_checkpoint.py --checkpoint "$LLARA" --out "$W/enc" >/dev/null
fi
if [ ! -f "$W/q/codebooks.safetensors" ]; then
  build/release/bin/sbtrec-quantize --config configs/movielens/quantize.yaml --set data.root="$DATA" \
    --encoder "$W/enc" --out "$W/q" --overwrite >/dev/null
fi
SBT="--config configs/movielens/ablations/sbtrec_smollm_paper.yaml --set data.root=$DATA --set encoder.checkpoint=$W/enc --set quantizer.codebooks=$W/q --set prompt.templates=configs/prompts/movielens.txt"
