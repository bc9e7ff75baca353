#!/usr/bin/env bash
# Installs sbtrec into a temporary prefix, builds examples/custom_experiment against it with
# find_package(sbtrec), and runs it on a small synthetic dataset.
set -euo pipefail
src=$1 build=$2 python=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
torch_prefix=$("$python" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
cmake -S "$src/examples/custom_experiment" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix;$torch_prefix" -DTORCH_CUDA_ARCH_LIST=9.0 >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/prefix/bin/sbtrec-data" synth --out "$tmp/data" --users 80 --items 120 2>/dev/null
out=$("$tmp/build/custom_experiment" "$tmp/data" "$tmp/run" 1 2>/dev/null)
echo "$out"
echo "$out" | grep -q "representation shape \[3, 64\]"
