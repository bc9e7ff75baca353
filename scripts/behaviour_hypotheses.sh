#!/usr/bin/env bash
# Issue 21's hypotheses, one run each: the shipped SmolLM2 config (configs/movielens/sbtrec_smollm.yaml)
# on the behaviour-signal data of scripts/behaviour_signal.sh, with ONE option changed per run (a
# leave-one-out screen around the default), trained for STEPS optimizer steps of 4 prompts and scored on
# the first CASES test cases by candidate likelihood with token reliance (how far the target's rank moves
# when the candidates' tokens are rotated). scripts/behaviour_hypotheses_summary.py prints one table with
# Wilson intervals and exact McNemar tests of each run against `shipped` on the same cases.
# Usage: scripts/behaviour_hypotheses.sh [STEPS] [OUT] [RUNS...]
#   (defaults 40, runs/behaviour_hypotheses, every run below). OUT/../behaviour_signal must hold the data,
#   SASRec and codebooks (BSIG=DIR names another; scripts/behaviour_signal.sh makes them).
# Env: CASES (60), SEED (42), FORCE=1 reruns runs whose results exist.
# A run takes about 6 minutes at 40 steps on two cores (AVX-512): start it in the background.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-40}
OUT=${2:-runs/behaviour_hypotheses}
shift $(( $# > 2 ? 2 : $# )) || true
BSIG=${BSIG:-$(dirname "$OUT")/behaviour_signal}
CASES=${CASES:-60}
SEED=${SEED:-42}
# name -> the one change (the --set assignments), beside the hypothesis of issue 21 it tests.
declare -A CHANGE=(
  [shipped]=""                                                      # the default itself
  [seed43]="seed=43"                                                # seed-to-seed spread of the default
  [output_scale_none]="aligner.output_scale=none"                   # the aligner's output scale vs the embedding rows
  [palette_off]="aligner.palette_size=0"                            # tokens as free aligner output
  [user_from_vector]="aligner.user_as_item=false"                   # the user token from the user vector
  [separate_aligners]="aligner.shared=false"                        # one aligner per kind (the paper)
  [user_token_history]="prompt.user_token_position=history"         # the user token's position (the paper's)
  [slot_after_title]="prompt.slot_position=after_title"             # 'title [CansEmb]' (the paper's)
  [no_chat]="llm.chat_format=none"                                  # the model's chat format off
  [lora_qv]="lora.target_modules=[q_proj,v_proj]"                   # LoRA target modules
  [lora_r32]="lora.r=32 lora.alpha=128"                             # LoRA rank (same alpha / r)
  [aligner_lr_x10]="train.aligner.lr=0.01 train.codebooks.lr=0.01"  # learning rate per group
  [lr_paper]="train.lr=0.0003"                                      # the paper config's learning rate
)
ORDER=(shipped seed43 output_scale_none palette_off user_from_vector separate_aligners user_token_history
       slot_after_title no_chat lora_qv lora_r32 aligner_lr_x10 lr_paper)
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=("${ORDER[@]}")
for r in "${RUNS[@]}"; do
  [ -n "${CHANGE[$r]+x}" ] || { echo "behaviour_hypotheses.sh: unknown run '$r'; known: ${ORDER[*]}" >&2; exit 2; }
done
for f in data/u.item enc q_output/codebooks.safetensors; do
  [ -e "$BSIG/$f" ] || { echo "behaviour_hypotheses.sh: $BSIG/$f is missing: run scripts/behaviour_signal.sh first (or set BSIG)" >&2; exit 2; }
done
./scripts/build.sh >/dev/null
B=build/release/bin
mkdir -p "$OUT"
for r in "${RUNS[@]}"; do
  if [ "${FORCE:-0}" != 1 ] && [ -s "$OUT/$r.json" ] && [ -f "$OUT/$r/predictions.jsonl" ]; then
    echo "== $r: results in $OUT already (FORCE=1 reruns it)"; continue
  fi
  sets=(); for a in ${CHANGE[$r]}; do sets+=(--set "$a"); done
  echo "== $r (${CHANGE[$r]:-no change}), $STEPS steps: $(date +%T)"
  $B/sbtrec-train --config configs/movielens/sbtrec_smollm.yaml --set data.root="$BSIG/data" \
    --set encoder.checkpoint="$BSIG/enc" --set quantizer.codebooks="$BSIG/q_output" \
    --set prompt.templates=configs/prompts/movielens.txt --set output_dir="$OUT/$r" --set seed="$SEED" \
    --set train.max_steps="$STEPS" --set eval.max_val_cases=2 --set eval.max_cases="$CASES" \
    --set eval.mode=likelihood --set eval.token_reliance=true "${sets[@]}" --overwrite --json \
    2> "$OUT/$r.log" | tail -n 1 > "$OUT/$r.json"
done
echo "== done: $(date +%T)"
.venv/bin/python scripts/behaviour_hypotheses_summary.py "$OUT" "${RUNS[@]}" | tee "$OUT/summary.md"
