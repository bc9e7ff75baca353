#!/usr/bin/env bash
# Regenerates the key reference inside configs/README.md from the option structs
# (`sbtrec-train --config-reference`); a unit test fails while the file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
ref=$(build/release/bin/sbtrec-train --config-reference)
.venv/bin/python - "$ref" <<'PY'
import sys
sys.path.insert(0, "scripts")
from sbtrec_io import atomic_write_text
path, ref = "configs/README.md", sys.argv[1] + "\n"
begin, end = "<!-- BEGIN GENERATED: sbtrec-train --config-reference -->\n", "<!-- END GENERATED -->"
text = open(path, encoding="utf-8").read()
b, e = text.index(begin) + len(begin), text.index(end)
atomic_write_text(path, text[:b] + ref + text[e:])
print(f"updated {path}")
PY
