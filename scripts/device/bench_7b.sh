#!/usr/bin/env bash
# GPU benchmark, run on the device machine in one call (< 8 minutes): Llama-2-7B shape with random
# bf16 weights, LoRA r 8 on all seven projections (fp32 adapters), batch 4 x 512 tokens, AdamW.
# Reports tokens/s, model FLOPs utilisation and peak memory for sbtrec and for transformers + PEFT
# (sdpa attention) on the same GPU in the same call, into $OUT/.
# Prepare here with scripts/device/bundle.sh, then call the device tool with
#   command: scripts/device/bench_7b.sh   carry: ["build/device-bundle"]   timeout_s: 540
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/device-bundle
OUT=${OUT:-/tmp/bench7b}
mkdir -p "$OUT"
[ -x "$B/bin/sbtrec-bench-lm" ] || { echo "error: $B missing: run scripts/device/bundle.sh on the build machine and carry it" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
PY=${PYTHON:-python3}
torch_lib=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
# Reference side: transformers + PEFT from the carried wheels, in a throwaway prefix.
$PY -m pip install -q --no-index --find-links "$B/wheels" --target "$OUT/pylib" transformers peft accelerate >/dev/null 2>&1 \
  || echo "warning: pip install of the carried wheels failed; the reference may not run" >&2
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
echo "== sbtrec"
LD_LIBRARY_PATH="$B/lib:$torch_lib" timeout 240 "$B/bin/sbtrec-bench-lm" step --preset 7b --device cuda --dtype bf16 \
  --batch 4 --seq 512 --steps "$STEPS" --warmup "$WARMUP" | tail -n 1 | tee "$OUT/sbtrec.json" || echo '{"impl": "sbtrec", "error": "failed"}' > "$OUT/sbtrec.json"
echo "== transformers + peft"
PYTHONPATH="$OUT/pylib" timeout 240 $PY bench/reference/lm_step.py --preset 7b --device cuda --dtype bf16 \
  --batch 4 --seq 512 --steps "$STEPS" --warmup "$WARMUP" | tail -n 1 | tee "$OUT/reference.json" || echo '{"impl": "transformers+peft", "error": "failed"}' > "$OUT/reference.json"
$PY scripts/device/summarize_7b.py "$OUT/sbtrec.json" "$OUT/reference.json" | tee "$OUT/summary.txt"
