#!/usr/bin/env bash
# The behaviour-signal benchmark (BENCHMARKS.md, issue 21): data whose titles say nothing and whose next
# item follows from behaviour alone (`sbtrec-data synth --titles random`: 600 items on 30 rings of 20,
# a user steps +1 along the ring of the last item), SASRec on it (the ceiling), HDSD on its vectors
# (item codes on the scoring rows, configs/movielens/quantize_smollm.yaml, and on the item-embedding
# rows, configs/movielens/quantize.yaml, for the paper's variant), then SmolLM2 trained for STEPS
# optimizer steps of 4 prompts as SBT-Rec (the shipped configs/movielens/sbtrec_smollm.yaml), with
# behavioural tokens shuffled across items, text-only, and with continuous tokens (no HDSD); optional
# variants: paper (configs/movielens/ablations/sbtrec_smollm_paper.yaml, the paper's tokens and prompt)
# and oracle (the control whose user token is the target's own token). Each is evaluated on the test
# split by generation (LLaRA's protocol) and by candidate likelihood with token reliance; then
# scripts/behaviour_signal_summary.py prints one table with 95% intervals and per-case paired tests
# against text-only.
# Usage: scripts/behaviour_signal.sh [STEPS] [OUT] [VARIANTS...]
#   (defaults 400, runs/behaviour_signal, sbtrec shuffled text_only continuous)
# Env: CASES (test cases per evaluation, default 200 = all), CURVE_EVERY (steps between learning-curve
# points, default STEPS / 4), CURVE_CASES (validation cases per point, 50), VAL_CASES (50), SEED (42),
# RELIANCE (1: the likelihood evaluation re-scores with the tokens moved, 3x its time; 0: not).
# A variant whose results are in OUT already is not run again (FORCE=1 reruns it), so the variants of
# one OUT can be spread over sessions; the table covers the variants named.
# At 400 steps a variant trains for about 31 minutes on two cores (AVX-512) and evaluates for 10-15
# more: start it in the background (nohup scripts/behaviour_signal.sh > runs/behaviour_signal.log 2>&1 &).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-400}
OUT=${2:-runs/behaviour_signal}
shift $(( $# > 2 ? 2 : $# )) || true
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(sbtrec shuffled text_only continuous)
CASES=${CASES:-200}
CURVE_EVERY=${CURVE_EVERY:-$(( STEPS / 4 > 0 ? STEPS / 4 : 1 ))}
CURVE_CASES=${CURVE_CASES:-50}
VAL_CASES=${VAL_CASES:-50}
SEED=${SEED:-42}
RELIANCE=${RELIANCE:-1}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
B=build/release/bin
source scripts/variants.sh
mkdir -p "$OUT"
echo "== data, SASRec, HDSD: $(date +%T)"
[ -f "$OUT/data/u.item" ] || $B/sbtrec-data synth --titles random --out "$OUT/data"
if [ ! -f "$OUT/sasrec.json" ]; then
  $B/sbtrec-train --config configs/movielens/sasrec.yaml --set data.root="$OUT/data" --set output_dir="$OUT/enc" \
    --set seed="$SEED" --overwrite --json 2> "$OUT/sasrec.log" | tail -n 1 > "$OUT/sasrec.json"
fi
# HDSD on the item-embedding rows (the paper) and on the scoring layer's rows (the SmolLM2 configs).
for rows in input output; do
  qcfg=configs/movielens/quantize.yaml; [ $rows = input ] || qcfg=configs/movielens/quantize_smollm.yaml
  [ -f "$OUT/q_$rows/codebooks.safetensors" ] || $B/sbtrec-quantize --config $qcfg \
    --set data.root="$OUT/data" --encoder "$OUT/enc" --out "$OUT/q_$rows" --overwrite > "$OUT/quantize_$rows.txt"
done
for v in "${VARIANTS[@]}"; do
  cfg=$(variant_config "$v")
  q=$OUT/q_$(variant_item_rows "$v")
  run=$OUT/$v
  if [ "${FORCE:-0}" != 1 ] && [ -s "$OUT/${v}_likelihood.json" ] &&
     { [ -f "$run/predictions_test_likelihood.jsonl" ] || [ -f "$run/predictions_likelihood.jsonl" ]; }; then
    echo "== $v: results in $OUT already (FORCE=1 reruns it)"
    continue
  fi
  echo "== $v ($cfg), $STEPS steps: $(date +%T)"
  common=(--set data.root="$OUT/data" --set eval.max_cases="$CASES")
  $B/sbtrec-train --config "$cfg" "${common[@]}" --set encoder.checkpoint="$OUT/enc" --set quantizer.codebooks="$q" \
    --set prompt.templates=configs/prompts/movielens.txt --set output_dir="$run" --set seed="$SEED" \
    --set train.max_steps="$STEPS" --set train.curve_every="$CURVE_EVERY" --set train.curve_cases="$CURVE_CASES" \
    --set eval.token_reliance=$([ "$RELIANCE" = 1 ] && echo true || echo false) --set eval.max_val_cases="$VAL_CASES" --overwrite --json 2> "$OUT/$v.log" | tail -n 1 > "$OUT/$v.json"
  # Training wrote the generation cases to predictions.jsonl; sbtrec-eval writes predictions_test_likelihood.jsonl.
  $B/sbtrec-eval --config "$run/config.yaml" "${common[@]}" --checkpoint "$run" --set eval.mode=likelihood --json \
    2>> "$OUT/$v.log" | tail -n 1 > "$OUT/${v}_likelihood.json"
done
echo "== done: $(date +%T)"
.venv/bin/python scripts/behaviour_signal_summary.py "$OUT" "${VARIANTS[@]}" | tee "$OUT/summary.md"
