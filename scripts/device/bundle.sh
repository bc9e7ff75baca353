#!/usr/bin/env bash
# Prepares build/device-bundle/ for the GPU machine (no network, no Debian packages of ours, PyTorch
# 2.11 CUDA preinstalled): the CUDA-enabled sbtrec-bench-lm, the gpu-labelled tests and libsbtrec.so
# built here, the shared libraries they need that are neither LibTorch's nor the system's (yaml-cpp,
# spdlog, fmt, SentencePiece, ...), and wheels of transformers + PEFT and their pure-Python
# dependencies for the reference side. Carry it with the device tool: carry ["build/device-bundle"].
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh >/dev/null
./scripts/build.sh --target sbtrec-bench-lm sbtrec-train sbtrec-quantize gpu_tests >/dev/null
out=build/device-bundle
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/wheels"
cp build/release/bin/sbtrec-bench-lm build/release/bin/sbtrec-train build/release/tests/gpu_tests "$out/bin/"
cp build/release/libsbtrec.so "$out/lib/"
torch_lib=$(.venv/bin/python -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# Libraries resolved outside LibTorch, the CUDA wheels and the C runtime: ship them.
for f in "$out/bin/sbtrec-bench-lm" "$out/bin/sbtrec-train" "$out/bin/gpu_tests" "$out/lib/libsbtrec.so"; do
  ldd "$f" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$lib" in
      "$torch_lib"/*|*/nvidia/*|*/cuda*|*/libc.so*|*/libm.so*|*/libpthread*|*/libdl.so*|*/librt.so*|*/ld-linux*|*/libgcc_s*|*/libstdc++*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
done
.venv/bin/pip download -q --no-deps -d "$out/wheels" -r scripts/requirements-parity.txt \
  huggingface_hub tokenizers safetensors regex tqdm filelock packaging pyyaml psutil hf-xet typer-slim \
  httpx2 httpcore2 anyio h11 idna truststore click fsspec typing-extensions >/dev/null
# Binary wheels for the other CPython versions the GPU machine might run.
for pyv in 3.10 3.12 3.13; do
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version "$pyv" --platform manylinux2014_x86_64 \
    --platform manylinux_2_28_x86_64 -d "$out/wheels" pyyaml regex >/dev/null 2>&1 || echo "note: no $pyv wheels for pyyaml/regex" >&2
done
cp bench/reference/lm_step.py scripts/device/summarize_7b.py "$out/"
# SBT-Rec on SmolLM2 (scripts/device/sbtrec_gpu.sh part 3): MovieLens-100K, LLaRA's SASRec imported,
# HDSD codebooks fitted here, the prompt templates and the config (its base merged in). The GGUF
# itself travels apart (scripts/device/stage_model.sh).
D=$out/sbtrec-data
DATA=${SBTREC_DATA:-../shared/data/ml-100k}
if [ -f "$DATA/u.data" ] && [ -f ../shared/models/llara-rec-models/movielens.pt ]; then
  mkdir -p "$D/ml-100k"
  cp "$DATA"/u.data "$DATA"/u.item "$DATA"/u.info "$DATA"/u.user "$DATA"/u.genre "$D/ml-100k/" 2>/dev/null || cp "$DATA"/u.* "$D/ml-100k/"
  .venv/bin/python scripts/import_llara_checkpoint.py --checkpoint ../shared/models/llara-rec-models/movielens.pt --out "$D/enc" >/dev/null
  build/release/bin/sbtrec-quantize --config configs/movielens/quantize_smollm.yaml --set data.root="$DATA" --encoder "$D/enc" \
    --out "$D/q" --overwrite >/dev/null
  cp configs/prompts/movielens.txt "$D/"
  build/release/bin/sbtrec-train --config configs/movielens/sbtrec_smollm.yaml --dump-config > "$D/sbtrec_smollm.yaml"
else
  echo "note: ../shared's MovieLens or LLaRA's SASRec is missing: the bundle has no SBT-Rec data" >&2
fi
du -sh "$out"
ls "$out/lib"
