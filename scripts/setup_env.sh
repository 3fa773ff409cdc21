#!/usr/bin/env bash
# Create or refresh .venv and install soo-marl with its test extras.
# torch==2.13.0 is installed first where that CPU wheel is available (as on our machines),
# so pip never pulls a multi-GB CUDA build; elsewhere pip's default torch is used. Every
# other package is pinned by constraints.txt at the versions the committed results used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -c "import torch" 2>/dev/null || pip install -q -c constraints.txt torch==2.13.0 ||
  pip install -q torch
pins=constraints.txt
if ! python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '2.13.0')"; then
  pins=$(mktemp)  # another torch (no 2.13.0 CPU wheel here): pin everything else
  grep -v '^torch==' constraints.txt >"$pins"
fi
pip install -q -c "$pins" -e ".[test]"
