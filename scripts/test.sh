#!/usr/bin/env bash
# The test command: set up .venv, then lint, format check, type check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python scripts/typecheck.py
python -m pytest -q -rs -n 2 "$@"
