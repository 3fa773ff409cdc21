"""SOO study 2's verdicts and mechanism reading (docs/results/soo_study2.md), on
hand-made metrics files in the layout ``soo-marl evaluate`` writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soo_marl import metrics, rundir
from soo_marl.analysis import soo_study2
from soo_marl.sweep.spec import load_study

N = 8
RNG = np.random.default_rng(3)


def _write(root, label, luring, goal, decod, sat=0.0):
    red = {
        "luring_delta_trap": metrics.summarize(luring),
        "trap_rate": metrics.summarize(np.asarray(luring) + 0.4),
        "blue_at_fake": metrics.summarize([0.2] * N),
        "blue_goal_rate": metrics.summarize(goal),
    }
    m = {
        "label": label,
        "cross_play": {"deceptive": red},
        "red_decodability": metrics.summarize(decod),
        "saturation": {"fraction_of_outputs": [[0.0, sat]] * N},
    }
    rundir.write_metrics(root / label, m)


def _noise(scale=0.005):
    return RNG.normal(0.0, scale, N)


@pytest.fixture()
def study(tmp_path):
    root = tmp_path / "runs"
    rundir.write_metrics(root / "deceptive", {"label": "deceptive", "cross_play": {}})
    base_l, base_g, base_d = 0.15 + _noise(0.02), 0.7 + _noise(0.02), 0.8 + _noise(0.02)
    _write(root, "control", base_l, base_g, base_d)
    arms = {
        # luring −0.10, goal kept, decodability kept: honest
        "soo_2a": (-0.10, 0.0, 0.0),
        # luring −0.12 with decodability −0.5: blinds
        "blind": (-0.12, 0.0, -0.5),
        # nothing changes: negative
        "sham": (0.0, 0.0, 0.0),
        # luring falls but goal reach collapses: inconclusive
        "soo_2a_w10": (-0.10, -0.3, 0.0),
    }
    for name, (dl, dg, dd) in arms.items():
        _write(root, name, base_l + dl + _noise(), base_g + dg + _noise(), base_d + dd + _noise())
    return root


def test_verdicts_follow_the_protocol(study, tmp_path):
    path = soo_study2.report(study, tmp_path / "out")
    arms = {a["stage"]: a for a in json.loads((tmp_path / "out" / "arms.json").read_text())}
    assert set(arms) == {"soo_2a", "blind", "sham", "soo_2a_w10"}  # missing arms skipped
    assert arms["soo_2a"]["verdict"] == soo_study2.HONEST
    assert arms["blind"]["verdict"] == soo_study2.BLINDS
    assert arms["sham"]["verdict"] == soo_study2.NEGATIVE
    assert arms["soo_2a_w10"]["verdict"] == soo_study2.INCONCLUSIVE
    # Holm inside the declared family: soo_2a and soo_2a_w10 share "soo", blind and sham
    # are judged on their own at 95%
    assert arms["soo_2a"]["family"] == "soo" and arms["blind"]["family"] is None
    assert arms["blind"]["level"] == pytest.approx(0.95)
    # Holm's step-down over the two: the first at 97.5%, the second (rejected after it) at 95%
    levels = sorted(arms[k]["level"] for k in ("soo_2a", "soo_2a_w10"))
    assert levels == pytest.approx([0.95, 0.975])
    assert arms["soo_2a"]["decodability"]["mean"] == pytest.approx(0.0, abs=0.01)
    text = path.read_text()
    assert "reproduces 2a's drop: SOO acts by blinding" in text
    assert "sham: luring" in text and "does not reproduce" in text
    assert "| blue's saturated outputs (fraction)" in text
    assert (tmp_path / "out" / "forest.png").stat().st_size > 10_000


def test_decodability_margin_decides_honest_or_blind():
    s = lambda m, lo, hi: {"mean": m, "ci_low": lo, "ci_high": hi, "n": N}  # noqa: E731
    luring, goal = s(-0.1, -0.15, -0.05), s(0.0, -0.02, 0.02)
    assert soo_study2.verdict(luring, goal, s(-0.05, -0.09, 0.0)) == soo_study2.HONEST
    assert soo_study2.verdict(luring, goal, s(-0.05, -0.11, 0.0)) == soo_study2.BLINDS
    # no decodability measured cannot make "honest"
    nan = s(np.nan, np.nan, np.nan)
    assert soo_study2.verdict(luring, goal, nan) == soo_study2.BLINDS
    assert soo_study2.verdict(s(-0.1, -0.15, -0.01), goal, nan) == soo_study2.INCONCLUSIVE


def test_no_drop_in_2a_means_no_mechanism_reading(study, tmp_path):
    m = rundir.read_metrics(study / "control")
    rundir.write_metrics(study / "soo_2a", {**m, "label": "soo_2a"})
    soo_study2.report(study, tmp_path / "out")
    text = (tmp_path / "out" / "arms.md").read_text()
    assert "2a did not lower luring at this scale" in text


def test_the_study_file_declares_every_arm_and_the_family():
    study = load_study(soo_study2.STUDY_FILE)
    stages = {s.name for s in study.stages}
    assert {c.treatment for c in soo_study2.COMPARISONS} <= stages and "control" in stages
    assert set(study.families["soo"]) == {
        "soo_2a", "soo_2a_mse", "soo_2a_w0.1", "soo_2a_w10", "soo_roleswap"
    }  # fmt: skip
