#!/usr/bin/env bash
# The main job: set up .venv, then reproduce the whole experiment at the `quick` preset
# (both baselines, SOO and --no-soo fine-tuning, evaluation, classifier, figures) into
# runs/reproduce/report.md. Extra arguments go to `soo-marl reproduce`, e.g.
#   bash scripts/main.sh --preset paper --out runs/reproduce_paper
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
soo-marl reproduce "$@"
