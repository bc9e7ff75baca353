#!/usr/bin/env bash
# SBT-Rec test-set evaluation by generation on SmolLM2-135M-Instruct: the first CASES MovieLens test
# cases (hybrid prompts, 20 candidates, batches of eval.llm_batch_size = 8, greedy, up to 32 new
# tokens, EOS stops), sbtrec's evaluate_sbtrec vs transformers + PEFT `generate(inputs_embeds=...)` on
# the same left-padded embeddings (dumped by the C++ side), same threads, REPEATS alternating runs,
# best of each. Last line: `speedup: X.XX` (cases/s, higher is better). The reference generates in
# dataset order from whole prompts, as the Python originals do; sbtrec batches by template and prompt
# length and runs each batch's shared prompt start once (eval.sort_by_length, eval.shared_prefix;
# for an A/B, add --set eval.sort_by_length=false --set eval.shared_prefix=false to the C++ side).
# GEMM is sbtrec's llm.gemm_dtype (same: float32 throughout; bf16: the prompt's matrix products in
# bfloat16); REF the reference's precision (bench/reference/sbtrec_generate.py --precision), by
# default its counterpart of GEMM (fp32, or autocast-bf16 for bf16).
# Usage: bench/sbtrec_eval.sh [THREADS] [CASES] [REPEATS] [GEMM] [REF]   (defaults 2, 32, 2, same)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
CASES=${2:-32}
REPEATS=${3:-2}
GEMM=${4:-same}
case $GEMM in same) REF=${5:-fp32} ;; bf16) REF=${5:-autocast-bf16} ;; *) echo "error: GEMM must be same or bf16" >&2; exit 2 ;; esac
source bench/sbtrec_common.sh
build/release/bin/sbtrec-bench-sbtrec generate $SBT --threads "$THREADS" --cases "$CASES" --dump "$W/generate" >/dev/null 2>&1
.venv/bin/python bench/compare.py --key cases_per_s --repeats "$REPEATS" \
  --label ", SBT-Rec evaluation by generation, SmolLM2-135M, sbtrec gemm_dtype $GEMM vs reference $REF, $CASES cases, threads $THREADS" \
  --cpp "build/release/bin/sbtrec-bench-sbtrec generate $SBT --set llm.gemm_dtype=$GEMM --threads $THREADS --cases $CASES" \
  --ref ".venv/bin/python bench/reference/sbtrec_generate.py --model $HF --inputs $W/generate --threads $THREADS --precision $REF"
