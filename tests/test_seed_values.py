"""seed_values.json: an evaluation writes every per-seed measure of its metrics.json with
the seeds, the evaluation settings and provenance, and intervals recompute from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from soo_marl import rundir, seed_values
from soo_marl.evaluate import evaluate_runs

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"


def test_an_evaluation_writes_seed_values_that_recompute_its_intervals(tmp_path):
    runs = []
    for name in ("deceptive", "honest"):
        shutil.copytree(MODELS / "quick8_r0.5" / name, tmp_path / name)
        runs.append(tmp_path / name)
    evaluate_runs(runs, episodes=2, eval_seeds=[0, 1], progress=False)
    m = rundir.read_metrics(runs[0])
    record = seed_values.read_seed_values(rundir.eval_dir(runs[0]))
    assert record["seeds"] == m["seeds"] == list(range(8))
    assert record["evaluation"]["episodes_per_eval_seed"] == 2
    assert record["evaluation"]["eval_seeds"] == [0, 1]
    assert record["evaluation"]["cross_play"] == sorted(m["cross_play"])
    assert record["provenance"]["torch"] and record["provenance"]["git revision"]
    honest = next(iter(m["cross_play"]))
    for measure, summary in (
        ("luring_delta_trap", m["luring_delta_trap"]),
        ("metrics.trap_rate", m["metrics"]["trap_rate"]),
        (f"cross_play.{honest}.luring_delta_trap", m["cross_play"][honest]["luring_delta_trap"]),
    ):
        again = seed_values.summary(record, measure, method="percentile")
        assert again["values"] == summary["values"]
        for key in ("mean", "ci_low", "ci_high"):
            assert again[key] == pytest.approx(summary[key], nan_ok=True), (measure, key)
    assert "grids_mean" not in json.dumps(list(record["measures"]))
    with pytest.raises(KeyError, match="no measure 'nope'"):
        seed_values.summary(record, "nope")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a 'soo-marl seed values 1' file"):
        seed_values.read_seed_values(tmp_path / "bad.json")
