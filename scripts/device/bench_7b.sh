#!/usr/bin/env bash
# GPU benchmark, run on the device machine in one call (< 8 minutes): Llama-2-7B shape with random
# bf16 weights, LoRA r 8 on all seven projections (fp32 adapters), batch 4 x 512 tokens, AdamW.
# Reports tokens/s, model FLOPs utilisation and peak memory for sbtrec and for transformers + PEFT
# (sdpa attention) on the same GPU in the same call, into $OUT/.
# Prepare here with scripts/device/bundle.sh, then call the device tool with
#   command: scripts/device/bench_7b.sh   carry: ["build/device-bundle"]   timeout_s: 540
# Dry run of the whole flow on a CPU machine (small model; the MFU column is then meaningless):
#   OUT=/tmp/b7 PYTHON=.venv/bin/python PRESET=small DEVICE=cpu DTYPE=fp32 BATCH=1 SEQ=64 STEPS=1 WARMUP=1 scripts/device/bench_7b.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/device-bundle
OUT=${OUT:-/tmp/bench7b}
mkdir -p "$OUT"
[ -x "$B/bin/sbtrec-bench-lm" ] || { echo "error: $B missing: run scripts/device/bundle.sh on the build machine and carry it" >&2; exit 1; }
PRESET=${PRESET:-7b}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bf16}
BATCH=${BATCH:-4}
SEQ=${SEQ:-512}
if [[ $DEVICE == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
fi
PY=${PYTHON:-python3}
torch_lib=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
# Reference side: transformers + PEFT from the carried wheels, in a throwaway prefix.
# --no-deps: the bundle carries exactly the pure-Python dependencies, and numpy / torch come with the
# machine's PyTorch (pip --target would otherwise try to fetch numpy again and fail offline).
$PY -c "import numpy" 2>/dev/null || echo "warning: numpy is not importable here; transformers needs it" >&2
$PY -m pip install -q --no-index --no-deps --find-links "$B/wheels" --target "$OUT/pylib" transformers peft accelerate \
  huggingface_hub tokenizers safetensors regex tqdm filelock packaging pyyaml psutil hf-xet typer-slim \
  httpx2 httpcore2 anyio h11 idna truststore click fsspec typing-extensions >/dev/null \
  || echo "warning: pip install of the carried wheels failed; the reference may not run" >&2
STEPS=${STEPS:-5}
THREADS=${THREADS:-$(nproc)}  # host threads, the same on both sides
WARMUP=${WARMUP:-2}
echo "== gpu tests (tests/gpu: the stack on CUDA against the CPU)"
LD_LIBRARY_PATH="$B/lib:$torch_lib" SBTREC_TEST_DEVICE="$DEVICE" timeout 120 "$B/bin/gpu_tests" > "$OUT/gpu_tests.txt" 2>&1 \
  && echo "passed" || { echo "FAILED (see gpu_tests.txt)"; tail -n 30 "$OUT/gpu_tests.txt"; }
echo "== sbtrec"
LD_LIBRARY_PATH="$B/lib:$torch_lib" timeout 240 "$B/bin/sbtrec-bench-lm" step --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" \
  --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" | tail -n 1 | tee "$OUT/sbtrec.json" || echo '{"impl": "sbtrec", "error": "failed"}' > "$OUT/sbtrec.json"
echo "== transformers + peft"
PYTHONPATH="$OUT/pylib" timeout 240 $PY bench/reference/lm_step.py --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" \
  --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" | tail -n 1 | tee "$OUT/reference.json" || echo '{"impl": "transformers+peft", "error": "failed"}' > "$OUT/reference.json"
$PY scripts/device/summarize_7b.py "$OUT/sbtrec.json" "$OUT/reference.json" | tee "$OUT/summary.txt"
