#!/usr/bin/env bash
# Builds everything with precompiled headers off (build/nopch), which proves that every file
# includes what it uses: with the PCH on, a missing include is silently supplied by pch.h.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
if [ ! -f build/nopch/CMakeCache.txt ] || [ ! -f build/nopch/build.ninja ]; then
  cmake -S . -B build/nopch -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON >/dev/null
fi
cmake --build build/nopch "$@"
