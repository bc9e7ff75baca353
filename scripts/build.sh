#!/usr/bin/env bash
# Configures the release preset when the build tree is missing or incomplete (no cache, or no
# build.ninja after an interrupted configure), then builds. Extra arguments go to `cmake --build`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/release/CMakeCache.txt ] || [ ! -f build/release/build.ninja ]; then
  cmake --preset release >/dev/null
fi
cmake --build --preset release "$@"
