#!/usr/bin/env bash
# Sets up (if needed), builds, and runs the whole test suite with ctest. Extra arguments go to ctest
# (e.g. ./scripts/test.sh -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd build/release
ctest --output-on-failure --timeout 1800 -j "${CTEST_PARALLEL_LEVEL:-2}" "$@"
