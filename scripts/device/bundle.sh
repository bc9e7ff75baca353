#!/usr/bin/env bash
# Prepares build/device-bundle/ for the GPU machine (no network, no Debian packages of ours, PyTorch
# 2.11 CUDA preinstalled): the CUDA-enabled sbtrec-bench-lm, the gpu-labelled tests and libsbtrec.so
# built here, the shared libraries they need that are neither LibTorch's nor the system's (yaml-cpp,
# spdlog, fmt, SentencePiece, ...), and wheels of transformers + PEFT and their pure-Python
# dependencies for the reference side. Carry it with the device tool: carry ["build/device-bundle"].
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup.sh >/dev/null
./scripts/build.sh --target sbtrec-bench-lm gpu_tests >/dev/null
out=build/device-bundle
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/wheels"
cp build/release/bin/sbtrec-bench-lm build/release/tests/gpu_tests "$out/bin/"
cp build/release/libsbtrec.so "$out/lib/"
torch_lib=$(.venv/bin/python -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# Libraries resolved outside LibTorch, the CUDA wheels and the C runtime: ship them.
for f in "$out/bin/sbtrec-bench-lm" "$out/bin/gpu_tests" "$out/lib/libsbtrec.so"; do
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
du -sh "$out"
ls "$out/lib"
