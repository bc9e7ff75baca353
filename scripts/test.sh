#!/usr/bin/env bash
# Sets up (if needed), builds, and runs the whole test suite with ctest, one thread per test and
# CTEST_PARALLEL_LEVEL (default 2) at once: first every test but the slow proofs (`ctest -LE slow`, a
# few minutes on 2 cores), then the slow proofs (`ctest -L slow`, verbose: they print their figures).
# Extra arguments replace both with one ctest call (e.g. ./scripts/test.sh -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd build/release
run() {
  local t0=$SECONDS
  ctest --output-on-failure --timeout 1800 -j "${CTEST_PARALLEL_LEVEL:-2}" "$@"
  echo "ctest $*: $((SECONDS - t0)) s"
}
if [ $# -gt 0 ]; then
  run "$@"
else
  run -LE slow
  run -L slow -V  # -V: the proofs print their figures
fi
