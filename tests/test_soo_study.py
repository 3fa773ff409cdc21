"""The SOO study's analysis: the verdict rule, paired differences, per-arm comparison from
metrics files, and the post-hoc red-weight measure."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from soo_marl import metrics, rundir
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.analysis import soo_study
from soo_marl.config import TrainConfig
from soo_marl.envs import core


def ci(lo: float, hi: float, mean: float | None = None) -> dict:
    return {"mean": (lo + hi) / 2 if mean is None else mean, "ci_low": lo, "ci_high": hi, "n": 8}


@pytest.mark.parametrize(
    ("luring", "goal", "word"),
    [
        (ci(-0.10, -0.04), ci(-0.1, 0.1, mean=0.02), soo_study.REDUCES),
        (ci(-0.10, -0.04), ci(-0.1, 0.1, mean=-0.05), soo_study.REDUCES),  # edge: within 0.05
        (ci(-0.10, -0.04), ci(0.0, 0.2, mean=0.06), soo_study.INCONCLUSIVE),  # goal moved
        (ci(-0.10, -0.029), ci(-0.1, 0.1, mean=0.0), soo_study.INCONCLUSIVE),  # CI touches band
        (ci(-0.02, 0.03), ci(-0.3, 0.3, mean=-0.2), soo_study.NEGATIVE),  # goal plays no part
        (ci(-0.04, 0.01), ci(-0.1, 0.1, mean=0.0), soo_study.INCONCLUSIVE),
        (ci(0.04, 0.10), ci(-0.1, 0.1, mean=0.0), soo_study.INCONCLUSIVE),  # more luring
        (ci(math.nan, math.nan), ci(0, 0), "not measured"),
    ],
)
def test_verdict_rule_as_committed(luring, goal, word):
    # rule v1, the rule committed with the protocol (v2: tests/test_statistics.py)
    assert soo_study.verdict(luring, goal, rule="v1") == word


def test_paired_difference_is_per_seed_and_refuses_misaligned_seeds():
    a = metrics.summarize([0.3, 0.2, 0.4, 0.1])
    b = metrics.summarize([0.1, 0.1, 0.1, 0.1])
    d = soo_study.paired(a, b)
    assert d["values"] == pytest.approx([0.2, 0.1, 0.3, 0.0])
    assert d["mean"] == pytest.approx(0.15)
    assert d["ci_low"] <= 0.15 <= d["ci_high"]
    assert soo_study.paired(a, metrics.summarize([0.1, 0.1]))["n"] == 0
    assert soo_study.paired(a, None)["n"] == 0


def _metrics(label: str, luring: list[float], goal: list[float], parent: str) -> dict:
    red = {
        "luring_delta_trap": metrics.summarize(luring),
        "trap_rate": metrics.summarize(np.asarray(luring) + 0.4),
        "blue_at_fake": metrics.summarize([0.2] * len(luring)),
        "blue_goal_rate": metrics.summarize(goal),
    }
    return {
        "label": label,
        "cross_play": {parent: red},
        "closed_loop_share": metrics.summarize([0.01] * len(luring)),
        "metrics": {"soo_value": metrics.summarize([1.0] * len(luring))},
    }


def test_compare_reads_the_parents_red_and_applies_the_rule(tmp_path):
    group = tmp_path / "r0.5"
    rundir.write_metrics(group / "deceptive", _metrics("deceptive", [0.12] * 4, [0.7] * 4, "x"))
    soo = [0.02, 0.03, 0.05, 0.04]
    ctrl = [0.14, 0.13, 0.16, 0.15]
    rundir.write_metrics(group / "soo", _metrics("soo", soo, [0.70, 0.65, 0.7, 0.7], "deceptive"))
    rundir.write_metrics(group / "ctl", _metrics("ctl", ctrl, [0.7] * 4, "deceptive"))
    c = soo_study.Comparison("9", "test arm", "r0.5", "soo", "ctl")
    r = soo_study.compare(tmp_path, c)
    assert r["luring"]["values"] == pytest.approx(np.subtract(soo, ctrl))
    assert r["luring"]["mean"] == pytest.approx(-0.11)
    assert r["goal"]["mean"] == pytest.approx(-0.0125)
    # rule v2: Student-t intervals; the goal-reach differences (0, -0.05, 0, 0) have
    # mean -0.0125 and SE 0.025/2, so the 95% lower bound lies just below -0.05: not
    # non-inferior, hence inconclusive, while rule v1 (mean within 0.05) said "reduces"
    low = -0.0125 - stats.t.ppf(0.975, 3) * 0.025 / 2
    assert r["goal"]["ci_low"] == pytest.approx(low) and low < -soo_study.GOAL_MARGIN
    assert r["luring"]["ci_high"] < -soo_study.BAND
    assert r["verdict"] == soo_study.INCONCLUSIVE
    assert soo_study.verdict(r["luring"], r["goal"], rule="v1") == soo_study.REDUCES
    assert r["labels"] == ("soo", "ctl", "deceptive")
    assert "| luring Δtrap (parent's red) | 0.035" in soo_study.arm_table(r)
    # the probes that do not rely on the out-of-sight code: "–" where a run lacks them,
    # a paired difference where both have them
    assert "| red decodability R² | – | – | – |" in soo_study.arm_table(r)
    for name, r2 in (("soo", [0.2, 0.3, 0.25, 0.35]), ("ctl", [0.8, 0.9, 0.85, 0.95])):
        m = rundir.read_metrics(group / name)
        m["red_decodability"] = metrics.summarize(r2)
        rundir.write_metrics(group / name, m)
    r2_row = soo_study.compare(tmp_path, c)["rows"]["red decodability R²"]
    assert r2_row[2]["mean"] == pytest.approx(-0.6)
    # not evaluated with the parent's red: a clear error, not a silent own-red comparison
    rundir.write_metrics(group / "ctl", _metrics("ctl", ctrl, [0.7] * 4, "someone-else"))
    with pytest.raises(ValueError, match="not evaluated with 'deceptive'"):
        soo_study.compare(tmp_path, c)
    missing = soo_study.Comparison("9", "t", "r0.5", "soo", "gone")
    assert soo_study.compare(tmp_path, missing) is None


def test_red_weight_measures_blues_first_layer_on_reds_slots(tmp_path):
    torch.manual_seed(0)
    model = MADDPG(MADDPGConfig(), [0, 1, 2], [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [2, 2])
    agents = ["adversary_0", "agent_0"]
    w = model.actor.weights[0]  # (seeds × agents, in, out); member = seed * 2 + agent
    with torch.no_grad():
        w[1 * 2 + core.BLUE, core.BLUE_RED_SLOTS, :] = 0.0  # seed 1's blue ignores red
        w[2 * 2 + core.BLUE, core.BLUE_RED_SLOTS, :] = 0.5  # seed 2's blue: known norm
        w[0 * 2 + core.RED, :, :] = 100.0  # red's weights must not leak into blue's measure
    head = rundir.header(model, agents, TrainConfig(), {})
    rundir.export_model(tmp_path, model, head, "deceptive", 1)
    red, rest = soo_study.red_weight(tmp_path)
    assert red.shape == rest.shape == (3,)
    assert red[1] == 0.0
    assert red[2] == pytest.approx(0.5 * math.sqrt(2 * w.shape[-1]))
    assert red[0] == pytest.approx(w[core.BLUE, core.BLUE_RED_SLOTS].norm().item(), rel=1e-6)
    assert 0 < red[0] < 100
    other = torch.ones(core.OBS_DIM_BLUE, dtype=torch.bool)
    other[core.BLUE_RED_SLOTS] = False
    assert rest[1] == pytest.approx(w[2 + core.BLUE, other].norm().item(), rel=1e-6)


def test_rejudge_of_the_committed_arms_keeps_v1_and_applies_v2(tmp_path):
    """The committed arms.json re-judged: its v1 verdicts come back as committed, and v2's
    intervals are the Student-t ones at the Holm level of the declared family."""
    import json
    from pathlib import Path

    arms = Path(__file__).resolve().parents[1] / "docs" / "results" / "soo_study" / "arms.json"
    committed = json.loads(arms.read_text())
    out = soo_study.rejudge(arms, tmp_path / "v2.md")
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["v1"]["verdict"] for r in rows] == [r["verdict"] for r in committed]
    family = [r for r in rows if r["family"] == "soo"]
    assert len(family) == 6 and all(r["level"] > 0.95 for r in family)
    a2 = next(r for r in rows if r["arm"] == "2a")
    d = np.asarray(a2["luring"]["values"], float)
    half = stats.t.ppf(0.5 + a2["level"] / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert a2["luring"]["ci_low"] == pytest.approx(d.mean() - half)
    assert a2["verdict"] == soo_study.INCONCLUSIVE  # v1 said "reduces deception"
    assert "| 2a |" in out.read_text()
