#!/usr/bin/env bash
# The SBT-Rec quality run on MovieLens-100K on a CPU, as a study: studies/movielens/quality_cpu.yaml
# (SBT-Rec with the shipped SmolLM2 config, shuffled tokens, text-only, continuous tokens, the paper's
# method on SmolLM2 and SASRec; 120 SBS-AO steps; the whole test split by generation and by likelihood),
# then its report (results.md with intervals and paired tests against SBT-Rec, figures). A study resumes
# where it stopped: run it again to continue.
# Usage: scripts/quality_run.sh [OUT] [VARIANT]   (defaults runs/quality, every variant)
# (Before issue 23 this script looped over the variants itself and printed scripts/quality_summary.py's
# table; that script still reads the result directories of those older runs.)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality}
ONLY=${2:-}
./scripts/setup.sh >/dev/null
./scripts/build.sh >/dev/null
B=build/release/bin
$B/sbtrec-study run studies/movielens/quality_cpu.yaml --out "$OUT" ${ONLY:+--only "$ONLY"}
$B/sbtrec-study report "$OUT"
