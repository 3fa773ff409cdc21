#!/usr/bin/env bash
# The main job: set up .venv, then run it (for now: a GIF of two random-policy episodes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
soo-marl render --policy random --episodes 2 --out runs/episode.gif "$@"
