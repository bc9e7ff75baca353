#!/usr/bin/env bash
# A change's speed against an earlier commit, in one run: the SBT-Rec SBS-AO step (bench/sbtrec_step.sh's
# shape), evaluation by generation (bench/sbtrec_eval.sh's) and greedy decoding (bench/lm_generate.sh's
# tiny Llama at 2 and 1 threads, bench/smollm_generate.sh's SmolLM2), this tree's benchmark programs vs
# the ones built in OLD_TREE (a worktree of the earlier commit: `git worktree add ../old <commit>`, then
# `cmake --preset release && cmake --build --preset release --target sbtrec-bench-sbtrec sbtrec-bench-lm`
# there), each with its own tree's config files on the same data, encoder and codebooks, REPEATS
# alternating runs, best of each. Then the step and evaluation scripts themselves (this tree vs the
# Python reference).
# Usage: bench/before_after.sh OLD_TREE [THREADS] [REPEATS]   (defaults 2, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(cd "${1:?usage: bench/before_after.sh OLD_TREE [THREADS] [REPEATS]}" && pwd)
THREADS=${2:-2}
REPEATS=${3:-3}
for b in sbtrec-bench-sbtrec sbtrec-bench-lm; do
  [ -x "$OLD/build/release/bin/$b" ] || { echo "error: $OLD/build/release/bin/$b is not built (see the usage above)" >&2; exit 1; }
done
source bench/sbtrec_common.sh
echo "before: $(git -C "$OLD" log --oneline -1); after: $(git log --oneline -1)$(git diff --quiet || echo ' + uncommitted changes')"
# The same options for both, with the config file from each one's own tree.
sets() {
  echo "--config $1/configs/movielens/ablations/sbtrec_smollm_paper.yaml --set data.root=$(realpath "$DATA")" \
    "--set encoder.checkpoint=$(realpath $W/enc) --set quantizer.codebooks=$(realpath $W/q)" \
    "--set prompt.templates=$1/configs/prompts/movielens.txt --set output_dir=$(realpath build/bench)/before-after"
}
NEW_SETS=$(sets "$PWD")
OLD_SETS=$(sets "$OLD")
.venv/bin/python bench/compare.py --key seconds_per_step --lower-is-better --repeats "$REPEATS" \
  --label ", SBS-AO step, after vs before, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sbtrec step $NEW_SETS --threads $THREADS --steps 3 --warmup 1" \
  --ref "$OLD/build/release/bin/sbtrec-bench-sbtrec step $OLD_SETS --threads $THREADS --steps 3 --warmup 1"
.venv/bin/python bench/compare.py --key cases_per_s --repeats "$REPEATS" \
  --label ", evaluation by generation (32 cases), after vs before, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sbtrec generate $NEW_SETS --threads $THREADS --cases 32" \
  --ref "$OLD/build/release/bin/sbtrec-bench-sbtrec generate $OLD_SETS --threads $THREADS --cases 32"
for t in "$THREADS" 1; do
  .venv/bin/python bench/compare.py --key tokens_per_s --repeats "$REPEATS" --label ", tiny Llama decoding, after vs before, threads $t" \
    --cpp "build/release/bin/sbtrec-bench-lm generate --threads $t --new-tokens 64" \
    --ref "$OLD/build/release/bin/sbtrec-bench-lm generate --threads $t --new-tokens 64"
done
SHAPE="--threads $THREADS --prompt-tokens 300 --new-tokens 32 --dtype fp32"
.venv/bin/python bench/compare.py --key tokens_per_s --repeats "$REPEATS" --label ", SmolLM2 decoding, after vs before, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-lm generate --model $GGUF $SHAPE" \
  --ref "$OLD/build/release/bin/sbtrec-bench-lm generate --model $GGUF $SHAPE"
echo "== bench/sbtrec_step.sh $THREADS"
bench/sbtrec_step.sh "$THREADS" 3 "$REPEATS" | tail -n 2
echo "== bench/sbtrec_eval.sh $THREADS"
bench/sbtrec_eval.sh "$THREADS" 32 2 | tail -n 2
