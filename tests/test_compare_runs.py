"""``soo-marl compare-runs`` (:func:`soo_marl.analysis.compare.compare_reproductions`) on
synthetic reproductions whose per-seed values are planted: the Welch intervals and p-values
against hand computations, Holm over all comparisons, the verdict and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from soo_marl import metrics, rundir
from soo_marl.analysis.compare import (
    DIFFERENT,
    REPRODUCTION_MEASURES,
    REPRODUCTION_RUNS,
    SAME,
    compare_reproductions,
)
from soo_marl.analysis.runs import TOP_LEVEL
from soo_marl.cli import main
from soo_marl.reproduce import preset_study

#: Per-seed values every measure of every run gets in the base reproduction (8 seeds).
BASE = np.array([0.10, 0.14, 0.08, 0.12, 0.11, 0.09, 0.13, 0.15])


def write_reproduction(out: Path, planted: dict[tuple[str, str], np.ndarray]) -> Path:
    """A reproduce --out folder: every run's eval/metrics.json with BASE per-seed values
    for each measure, except the (run, key) pairs in ``planted``."""
    for run in REPRODUCTION_RUNS:
        m: dict = {"seeds": list(range(BASE.size)), "metrics": {}}
        for key in REPRODUCTION_MEASURES.values():
            s = metrics.summarize(planted.get((run, key), BASE), method="t")
            if key in TOP_LEVEL:
                m[key] = s
            else:
                m["metrics"][key] = s
        rundir.write_metrics(out / run, m)
    return out


def test_the_runs_are_the_stages_of_the_reproduce_study():
    stages = {s.name for s in preset_study("test").stages}
    assert set(REPRODUCTION_RUNS) <= stages


def test_identical_reproductions_are_statistically_the_same(tmp_path):
    a = write_reproduction(tmp_path / "a", {})
    b = write_reproduction(tmp_path / "b", {})
    result = compare_reproductions(a, b)
    rows = result["comparisons"]
    assert len(rows) == len(REPRODUCTION_RUNS) * len(REPRODUCTION_MEASURES) == 16
    assert result["verdict"] == SAME and result["rejected"] == 0
    for r in rows:
        assert r["difference"] == 0.0 and r["p"] == 1.0 and not r["rejected"]
        low, high = r["ci95"]
        assert low == pytest.approx(-high) and high > 0
    # Holm with nothing rejected: every comparison at the first step's level
    assert [r["holm_level"] for r in rows] == pytest.approx([1 - 0.05 / 16] * 16)


def test_a_planted_difference_is_found_and_holm_corrected(tmp_path):
    shifted = BASE + 0.05  # luring of the honest run: A's mean 0.05 above B's
    a = write_reproduction(tmp_path / "a", {("honest", "luring_delta_trap"): shifted})
    b = write_reproduction(tmp_path / "b", {})
    result = compare_reproductions(a, b)
    assert result["verdict"] == DIFFERENT and result["rejected"] == 1
    (row,) = [r for r in result["comparisons"] if r["rejected"]]
    assert (row["run"], row["measure"]) == ("honest", "luring Δtrap")
    # Welch by hand: equal SDs and sizes, so SE = sqrt(2 var / n) and df = 2(n − 1) = 14
    n, var = BASE.size, BASE.var(ddof=1)
    se = math.sqrt(2 * var / n)
    t = sps.t.ppf(0.975, 14)
    assert row["difference"] == pytest.approx(0.05)
    assert row["ci95"] == pytest.approx([0.05 - t * se, 0.05 + t * se])
    assert row["p"] == pytest.approx(2 * sps.t.sf(0.05 / se, 14))
    assert row["sd_pooled"] == pytest.approx(math.sqrt(var))
    assert row["a"] == pytest.approx(shifted.mean()) and row["b"] == pytest.approx(BASE.mean())
    # the smallest p is tested at α/16; the rest (p = 1) stop Holm at α/15
    assert row["holm_level"] == pytest.approx(1 - 0.05 / 16)
    others = [r["holm_level"] for r in result["comparisons"] if not r["rejected"]]
    assert others == pytest.approx([1 - 0.05 / 15] * 15)


def test_a_difference_that_holm_does_not_reject(tmp_path):
    # p = 0.028 alone: below 5% but not below 5%/16, so the family-wise verdict stays
    shifted = BASE + 0.03
    a = write_reproduction(tmp_path / "a", {("soo", "trap_rate"): shifted})
    b = write_reproduction(tmp_path / "b", {})
    result = compare_reproductions(a, b)
    (row,) = [r for r in result["comparisons"] if r["difference"] != 0]
    assert 0.05 / 16 < row["p"] < 0.05 and row["ci95"][0] > 0
    assert not row["rejected"] and result["verdict"] == SAME


def test_compare_runs_command_prints_the_table_and_writes_json(tmp_path):
    a = write_reproduction(tmp_path / "a", {("nosoo", "blue_goal_rate"): BASE - 0.1})
    b = write_reproduction(tmp_path / "b", {})
    out = tmp_path / "cmp.json"
    res = CliRunner().invoke(main, ["compare-runs", str(a), str(b), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "verdict: different (1 of 16 rejected at family-wise 5%)" in res.output
    line = next(x for x in res.output.splitlines() if "rejected (Holm)" in x)
    assert line.split()[:4] == ["nosoo", "blue", "goal", "rate"] and "-0.100" in line
    saved = json.loads(out.read_text())
    assert saved["verdict"] == DIFFERENT and saved["rejected"] == 1
    assert len(saved["comparisons"]) == 16


def test_compare_runs_names_a_missing_evaluation(tmp_path):
    a = write_reproduction(tmp_path / "a", {})
    (tmp_path / "b").mkdir()
    res = CliRunner().invoke(main, ["compare-runs", str(a), str(tmp_path / "b")])
    assert res.exit_code == 1
    assert "deceptive: no eval/metrics.json (run soo-marl evaluate first)" in res.output
