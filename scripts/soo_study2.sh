#!/usr/bin/env bash
# SOO study 2 of docs/results/soo_study2.md in one command: join the 32 parents (paper_r0.5
# seeds 0-7, paper32_r0.5 seeds 8-31, all committed under docs/results/models) into
# runs/soo_study2_parents, run studies/soo_study2.yaml, then write the report. Finished
# stages are skipped, so after a crash or Ctrl-C the same command continues.
#   OUT     where the runs go (default runs/soo_study2)
#   REPORT  where the per-arm tables and the forest plot go (default docs/results/soo_study2)
#   SET     extra options for the sweep, e.g. "--dry-run" for the cost estimate alone, or
#           "--set ft_episodes=40 --set eval_episodes=2" to try the script at a tiny scale
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/soo-marl ] || bash scripts/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-runs/soo_study2}
REPORT=${REPORT:-docs/results/soo_study2}
M=docs/results/models
soo-marl stack-models "$M/paper_r0.5/deceptive" "$M/paper32_r0.5_s0-15/deceptive" \
    "$M/paper32_r0.5_s16-31/deceptive" --seeds 0-31 --out runs/soo_study2_parents/deceptive
# shellcheck disable=SC2086
soo-marl sweep studies/soo_study2.yaml --out "$OUT" --max-parallel 2 ${SET:-}
case " ${SET:-} " in *" --dry-run "*) exit 0 ;; esac
python -m soo_marl.analysis.soo_study2 report "$OUT" "$REPORT"
