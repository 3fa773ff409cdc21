#!/usr/bin/env bash
# The SOO study of docs/results/soo_study.md in one command: studies/soo_study.yaml (arms
# 1, 2, 4, 5 and arm 3's variant baselines), then arm 3's SOO runs for every variant that
# passes its gate (studies/soo_study_variant.yaml), then the report. Finished stages are
# skipped, so after a crash or Ctrl-C the same command continues.
#   OUT     where the runs go (default runs/soo_study)
#   REPORT  where the per-arm tables and the forest plot go (default docs/results/soo_study)
#   SET     extra --set options, e.g. SET="--set ft_episodes=40 --set eval_episodes=2" to try
#           the script out at a tiny scale
#   SOO     the soo-marl command (default soo-marl) and PY the python (default python): to
#           run a pinned copy of the package, e.g. PY=/path/venv/bin/python
#           SOO="$PY -m soo_marl.cli" PYTHONSAFEPATH=1 (so the checkout does not shadow it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/soo-marl ] || bash scripts/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-runs/soo_study}
REPORT=${REPORT:-docs/results/soo_study}
SOO=${SOO:-soo-marl}
PY=${PY:-python}
read -r -a SET_ARGS <<< "${SET:-}"
$SOO sweep studies/soo_study.yaml --out "$OUT" "${SET_ARGS[@]}"
FOLLOW=()
for arg in "${SET_ARGS[@]}"; do  # the follow-up study knows ft_episodes and eval_episodes only
  case "$arg" in ft_episodes=*|eval_episodes=*) FOLLOW+=(--set "$arg") ;; esac
done
for v in speed delay both; do
  if $PY -m soo_marl.analysis.soo_study gate "$OUT/variants/$v"; then
    $SOO sweep studies/soo_study_variant.yaml --out "$OUT/variants-followup/$v" \
      --set "root=$OUT" --set "variant=$v" "${FOLLOW[@]}"
  fi
done
$PY -m soo_marl.analysis.soo_study report "$OUT" "$REPORT"
