#!/usr/bin/env bash
# The SBT-Rec GPU call (issues 9 and 10), run on the device machine in one call (< 8 minutes), into $OUT/:
#  1. scripts/device/bench_7b.sh: the gpu-labelled tests, and the Llama-2-7B-shape LoRA step (random
#     bf16 weights, batch 4 x 512, r 8 on seven projections) for sbtrec and transformers + PEFT (sdpa):
#     tokens/s, MFU, peak memory. Labels on the last 16 tokens of each row, as SBT-Rec's answers; the
#     SBS-AO extras (HDSD codebooks 3 x 128 x 64 and the 64 -> 4096 -> 4096 aligner, ~17M parameters
#     against 6.7B) are left out of this shape.
#  2. Greedy decoding at batch 1 for the 7B shape (tokens/s) and the device's copy bandwidth measured by
#     torch in the same call, so the bandwidth bound (bytes of weights per token / bandwidth) is the
#     machine's own.
#  3. If the SmolLM2 GGUF is on the device (build/device-model/, assembled by an earlier call: the
#     93 MB file is above one call's 64 MiB, see scripts/device/stage_model.sh), a short SBT-Rec
#     training + test evaluation on MovieLens-100K with llm.device cuda; else "skipped".
# Prepare here with scripts/device/bundle.sh, then call the device tool with
#   command: scripts/device/sbtrec_gpu.sh   carry: ["build/device-bundle"]   timeout_s: 540
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/device-bundle
OUT=${OUT:-/tmp/sbtrec-gpu}
mkdir -p "$OUT"
export OUT
PY=${PYTHON:-python3}
torch_lib=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$B/lib:$torch_lib"
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bf16}
PRESET=${PRESET:-7b}

echo "== 1. tests and the 7B-shape LoRA step"
scripts/device/bench_7b.sh || echo "bench_7b.sh failed"

echo "== 2. 7B-shape greedy decoding at batch 1, and the bandwidth bound"
timeout 180 "$B/bin/sbtrec-bench-lm" generate --preset "$PRESET" --device "$DEVICE" --dtype "$DTYPE" --new-tokens "${NEW_TOKENS:-128}" \
  --prompt-tokens 64 --threads "$(nproc)" | tail -n 1 | tee "$OUT/decode.json" || echo '{"error": "failed"}' > "$OUT/decode.json"
$PY - "$OUT/decode.json" "$PRESET" "$DEVICE" <<'PYEOF' | tee "$OUT/decode_summary.txt"
import json, sys, time, torch
d = json.load(open(sys.argv[1])); preset, device = sys.argv[2], sys.argv[3]
# Device copy bandwidth: read + write of a 2 GiB buffer (bytes moved / time), best of 5.
n = (2 << 30) // 2 if device.startswith("cuda") else (256 << 20) // 2
x = torch.empty(n, dtype=torch.bfloat16, device=device); y = torch.empty_like(x)
best = float("inf")
for _ in range(5):
    if device.startswith("cuda"): torch.cuda.synchronize()
    t = time.perf_counter(); y.copy_(x)
    if device.startswith("cuda"): torch.cuda.synchronize()
    best = min(best, time.perf_counter() - t)
bw = 2 * x.numel() * x.element_size() / best
params = {"7b": 6.74e9}.get(preset, d.get("params", 0))
bytes_per_token = params * 2  # bf16 weights read once per decoded token
bound = bw / bytes_per_token if bytes_per_token else 0
tps = d.get("tokens_per_s", 0)
print(json.dumps({"decode_tokens_per_s": tps, "copy_bandwidth_GBps": bw / 1e9, "bound_tokens_per_s": bound,
                  "fraction_of_bound": tps / bound if bound else None}))
PYEOF

echo "== 3. SBT-Rec on SmolLM2 (MovieLens-100K, llm.device $DEVICE)"
MODEL=build/device-model/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f build/device-model/part-a ] && [ -f build/device-model/part-b ] && [ ! -f "$MODEL" ]; then
  cat build/device-model/part-a build/device-model/part-b > "$MODEL"
fi
if [ -f "$MODEL" ] && [ -x "$B/bin/sbtrec-train" ] && [ -d "$B/sbtrec-data/ml-100k" ]; then
  D=$B/sbtrec-data
  SETS=(--set data.root="$D/ml-100k" --set llm.model="$MODEL" --set llm.device="$DEVICE" --set llm.dtype=bf16
        --set encoder.checkpoint="$D/enc" --set quantizer.codebooks="$D/q" --set prompt.templates="$D/movielens.txt"
        --set train.max_steps="${SBTREC_STEPS:-200}" --set train.lr=1e-3 --set train.log_every=20
        --set eval.max_val_cases=32 --set eval.llm_batch_size=64 --set output_dir="$OUT/sbtrec-run")
  ( time timeout 300 "$B/bin/sbtrec-train" --config "$D/sbtrec_smollm.yaml" "${SETS[@]}" --overwrite --json ) \
    > "$OUT/sbtrec_smollm.txt" 2> "$OUT/sbtrec_smollm.log" || echo "sbtrec-train failed (see sbtrec_smollm.log)"
  tail -n 12 "$OUT/sbtrec_smollm.txt"; grep -E "tokens/s|real" "$OUT/sbtrec_smollm.log" | tail -n 4
else
  echo "skipped: the SmolLM2 GGUF is not on the device (stage it with scripts/device/stage_model.sh's first call)"
fi
