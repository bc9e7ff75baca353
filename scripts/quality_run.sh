#!/usr/bin/env bash
# The SBT-Rec quality run on MovieLens-100K on a CPU (BENCHMARKS.md): SmolLM2-135M-Instruct trained
# for STEPS SBS-AO steps of 4 prompts (lr 1e-3) as SBT-Rec (the shipped configs/movielens/sbtrec_smollm.yaml),
# as the same model with behavioural tokens shuffled across items, and text-only; optional variants:
# continuous (no HDSD), paper (ablations/sbtrec_smollm_paper.yaml, the paper's tokens and prompt) and
# any other ablations/sbtrec_smollm_<name>.yaml; each evaluated on the whole test split (20 candidates) by
# generation and by candidate likelihood; beside SASRec alone (LLaRA's checkpoint) on the same
# candidate sets. Then scripts/quality_summary.py prints the table with 95% intervals and paired
# differences on the same cases, and the learning curves.
# Usage: scripts/quality_run.sh [STEPS] [OUT] [VARIANTS...]   (defaults 120, runs/quality, sbtrec shuffled text_only)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-120}
OUT=${2:-runs/quality}
shift $(( $# > 2 ? 2 : $# )) || true
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(sbtrec shuffled text_only)
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
B=build/release/bin
source scripts/variants.sh
DATA=${SBTREC_DATA:-../shared/data/ml-100k}
LLARA=${SBTREC_LLARA_SASREC:-../shared/models/llara-rec-models/movielens.pt}
mkdir -p "$OUT"
[ -f "$OUT/enc/model.safetensors" ] || .venv/bin/python scripts/import_llara_checkpoint.py --checkpoint "$LLARA" --out "$OUT/enc" >/dev/null
# HDSD on the scoring rows (the SmolLM2 configs) and on the item-embedding rows (the paper's variant).
[ -f "$OUT/q/codebooks.safetensors" ] || $B/sbtrec-quantize --config configs/movielens/quantize_smollm.yaml --set data.root="$DATA" \
  --encoder "$OUT/enc" --out "$OUT/q" --overwrite > "$OUT/quantize.txt"
[ -f "$OUT/q_input/codebooks.safetensors" ] || $B/sbtrec-quantize --config configs/movielens/quantize.yaml --set data.root="$DATA" \
  --encoder "$OUT/enc" --out "$OUT/q_input" --overwrite > "$OUT/quantize_input.txt"
$B/sbtrec-eval --config configs/movielens/sasrec.yaml --set data.root="$DATA" --checkpoint "$OUT/enc" --json | tail -n 1 > "$OUT/sasrec.json"
for v in "${VARIANTS[@]}"; do
  cfg=$(variant_config "$v")
  q=$OUT/q; [ "$(variant_item_rows "$v")" = output ] || q=$OUT/q_input
  run=$OUT/$v
  echo "== $v ($cfg), $STEPS steps: $(date +%T)"
  $B/sbtrec-train --config "$cfg" --set data.root="$DATA" --set encoder.checkpoint="$OUT/enc" \
    --set quantizer.codebooks="$q" --set prompt.templates=configs/prompts/movielens.txt --set output_dir="$run" \
    --set train.max_steps="$STEPS" --set train.lr=1e-3 --set train.log_every=10 --set eval.max_cases=0 \
    --set eval.max_val_cases=16 --overwrite --json 2> "$OUT/$v.log" | tail -n 1 > "$OUT/$v.json"
  # Training wrote the generation cases to predictions.jsonl; sbtrec-eval writes predictions_test_likelihood.jsonl.
  $B/sbtrec-eval --config "$run/config.yaml" --checkpoint "$run" --set eval.mode=likelihood --json 2>> "$OUT/$v.log" | tail -n 1 > "$OUT/${v}_likelihood.json"
done
echo "== done: $(date +%T)"
.venv/bin/python scripts/quality_summary.py "$OUT" "${VARIANTS[@]}"
