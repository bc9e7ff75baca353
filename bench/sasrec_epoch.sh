#!/usr/bin/env bash
# One SASRec training epoch on MovieLens-100K (LLaRA protocol, batch 256, BCE + one negative, Adam):
# sbtrec (C++) vs the same model and step in Python PyTorch (bench/reference/sasrec_epoch.py), same
# torch version, same thread count, same samples, in one run. Last line: `speedup: X.XX`.
# Usage: bench/sasrec_epoch.sh [THREADS] [REPEATS]   (defaults 1 and 3; the best of the repeats counts)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-1}
REPEATS=${2:-3}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
root=${SBTREC_DATA:-data/ml-100k}
[ -f "$root/u.data" ] || root=../shared/data/ml-100k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build/release/bin/sbtrec-data export --config configs/movielens/sasrec.yaml --set data.root="$root" --split train --out "$tmp/train.tsv" 2>/dev/null
.venv/bin/python bench/compare.py --key seconds --lower-is-better --repeats "$REPEATS" --label ", threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sasrec --config configs/movielens/sasrec.yaml --set data.root=$root --threads $THREADS" \
  --ref ".venv/bin/python bench/reference/sasrec_epoch.py --samples $tmp/train.tsv --num-items 1682 --id-offset 1 --threads $THREADS"
