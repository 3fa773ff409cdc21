"""The closed-loop gate (:mod:`soo_marl.analysis.closed_loop`, docs/results/closed_loop.md)
on planted per-seed values: its intervals against hand computations, each of the four
conditions failing on its own, the pilot rule, and the module's command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from soo_marl import metrics, rundir
from soo_marl.analysis.closed_loop import closed_loop_gate, main, pilot_row

#: A design that passes: 4 trained seeds per baseline.
DEC = {
    "luring": [0.30, 0.34, 0.26, 0.30],
    "blind": [0.10, 0.12, 0.08, 0.10],
    "shuffled": [0.12, 0.12, 0.10, 0.14],
    "red_goal": [0.3, 0.3, 0.3, 0.3],
    "blind_red_goal": [0.3, 0.3, 0.3, 0.3],
    "blue_goal": [0.5, 0.6, 0.5, 0.6],
    "trap": [0.6, 0.5, 0.6, 0.5],
}
HON = {
    "luring": [0.00, 0.02, -0.02, 0.00],
    "blind": [0.0, 0.0, 0.0, 0.0],
    "shuffled": [0.0, 0.0, 0.0, 0.0],
    "red_goal": [0.80, 0.75, 0.85, 0.80],
    "blind_red_goal": [0.50, 0.50, 0.50, 0.50],
    "blue_goal": [0.9, 0.95, 0.85, 0.9],
    "trap": [0.1, 0.2, 0.1, 0.2],
}


def metrics_json(v: dict[str, list[float]]) -> dict:
    """The parts of an evaluated run's metrics.json the gate reads."""

    def s(key: str) -> dict:
        return metrics.summarize(v[key], method="t")

    return {
        "luring_delta_trap": s("luring"),
        "blind": {"luring_delta_trap": s("blind"), "red_goal_rate": s("blind_red_goal")},
        "shuffled": {"luring_delta_trap": s("shuffled")},
        "metrics": {"red_goal_rate": s("red_goal"), "blue_goal_rate": s("blue_goal"),
                    "trap_rate": s("trap")},
    }  # fmt: skip


def t_ci(x) -> list[float]:
    x = np.asarray(x, float)
    h = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return [x.mean() - h, x.mean() + h]


def gate(dec_changes=None, hon_changes=None) -> dict:
    return closed_loop_gate(
        metrics_json({**DEC, **(dec_changes or {})}), metrics_json({**HON, **(hon_changes or {})})
    )


def test_the_numbers_by_hand():
    g = gate()
    lur, blind, shuf = (np.array(DEC[k]) for k in ("luring", "blind", "shuffled"))
    assert g["sighted_luring"]["mean"] == pytest.approx(0.30)
    assert [g["sighted_luring"]["ci_low"], g["sighted_luring"]["ci_high"]] == pytest.approx(
        t_ci(lur)
    )
    # closed-loop shares: sighted − probe, paired by trained seed
    assert g["share_blind"]["mean"] == pytest.approx(0.20)
    assert [g["share_blind"]["ci_low"], g["share_blind"]["ci_high"]] == pytest.approx(
        t_ci(lur - blind)
    )
    assert g["share_blind_of_sighted"] == pytest.approx(0.20 / 0.30)
    assert g["share_shuffled"]["mean"] == pytest.approx(0.18)
    assert g["share_shuffled_of_sighted"] == pytest.approx(0.6)
    assert [g["share_shuffled"]["ci_low"], g["share_shuffled"]["ci_high"]] == pytest.approx(
        t_ci(lur - shuf)
    )
    # deceptive − honest luring: Welch (variances 0.0016/1.5 and 0.0004/1.5, 4 seeds each)
    hon = np.array(HON["luring"])
    va, vb = lur.var(ddof=1) / 4, hon.var(ddof=1) / 4
    assert (va, vb) == pytest.approx((0.0016 / 6, 0.0004 / 6))
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 3)
    h = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    gap = g["deceptive_minus_honest"]
    assert [gap["mean"], gap["ci_low"], gap["ci_high"]] == pytest.approx([0.3, 0.3 - h, 0.3 + h])
    # red's goal reach with the honest blue, sighted − blind, paired
    needs = g["red_goal_sighted_minus_blind"]
    assert needs["mean"] == pytest.approx(0.30)
    red = np.array(HON["red_goal"]) - 0.5
    assert [needs["ci_low"], needs["ci_high"]] == pytest.approx(t_ci(red))
    assert (g["red_goal_sighted"], g["red_goal_blind"]) == pytest.approx((0.8, 0.5))
    assert (g["blue_goal_honest"], g["blue_goal_deceptive"]) == pytest.approx((0.9, 0.55))
    assert (g["trap_rate_deceptive"], g["trap_rate_honest"]) == pytest.approx((0.55, 0.15))
    assert all(g["conditions"].values()) and g["passes"] and g["pilot_passes"]


@pytest.mark.parametrize(
    "dec, hon, failing",
    [
        # 1. no deception: the honest blue lures as much
        ({}, {"luring": DEC["luring"]}, "deception"),
        # 2. blind luring 0.16 of 0.30: the share is 47% < 50% (its CI is still above 0)
        ({"blind": [0.16, 0.18, 0.14, 0.16]}, {}, "luring_needs_red_blind"),
        # 2. a share of 60% whose CI includes 0
        ({"shuffled": [0.3, -0.02, 0.26, -0.06]}, {}, "luring_needs_red_shuffled"),
        # 3. red reaches its goal 0.15 more often with a sighted honest blue: below 0.2
        ({}, {"red_goal": [0.65, 0.6, 0.7, 0.65]}, "honest_needs_red"),
        # 4. the honest blue reaches its own goal 0.75 < 0.8 of the time
        ({}, {"blue_goal": [0.75, 0.8, 0.7, 0.75]}, "honest_capable"),
    ],
)
def test_each_condition_fails_on_its_own(dec, hon, failing):
    g = gate(dec, hon)
    assert {k for k, holds in g["conditions"].items() if not holds} == {failing}
    assert not g["passes"]


def test_the_share_needs_its_ci_above_zero_and_a_sighted_luring():
    g = gate({"shuffled": [0.3, -0.02, 0.26, -0.06]})
    assert g["share_shuffled_of_sighted"] == pytest.approx(0.6)
    assert g["share_shuffled"]["ci_low"] < 0
    # a blue that lures less with red in view than without: negative shares, pilot fails
    g = gate({"blind": [0.4, 0.4, 0.4, 0.4]})
    assert g["share_blind"]["mean"] == pytest.approx(-0.1)
    assert not g["conditions"]["luring_needs_red_blind"] and not g["pilot_passes"]


def test_command_line_prints_the_row_and_exits_by_the_gate(tmp_path, capsys):
    for name, values in (("deceptive", DEC), ("honest", HON)):
        rundir.write_metrics(tmp_path / "D" / name, metrics_json(values))
    assert main([str(tmp_path / "D")]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["design"] == str(tmp_path / "D") and row["gate"] == "passes"
    assert row["share / sighted (blind)"] == "67%"
    assert row["red goal with honest blue: sighted / blind"] == "0.800 / 0.500"
    assert row == {
        "design": str(tmp_path / "D"),
        **pilot_row(gate()),
        "conditions": row["conditions"],
    }
    rundir.write_metrics(tmp_path / "D" / "honest", metrics_json({**HON, "luring": DEC["luring"]}))
    assert main([str(tmp_path / "D")]) == 1
    assert main([]) == 2
    assert main(["--help"]) == 2  # usage, not a directory named "--help"
