#!/usr/bin/env bash
# Create or refresh .venv and install soo-marl with its test extras.
# torch==2.13.0 is installed first where that CPU wheel is available (as on our machines),
# so pip never pulls a multi-GB CUDA build; elsewhere pip's default torch is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0 || pip install -q torch
pip install -q -e ".[test]"
