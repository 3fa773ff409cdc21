"""Probe v2's validation (docs/results/probe_v2.md) on the committed 8-seed paper r0.5
parents with small budgets: the statistics on constructed cases, and the whole protocol
with known answers (a blue with red's slots zeroed reads at its floor; an arm identical
to its control is non-inferior)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from soo_marl import probe_validation as pv
from soo_marl.envs import core

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"


def test_rank_statistics_on_constructed_differences():
    d = np.array([0.01, -0.02, 0.03, 0.0, 0.02, -0.01, 0.04, 0.01])
    assert pv.hodges_lehmann(d) == pytest.approx(
        np.median([(d[i] + d[j]) / 2 for i in range(8) for j in range(i, 8)])
    )
    assert pv.noninferior_p(d, 0.1) == pytest.approx(1 / 256)  # every d + m > 0: exact
    assert pv.noninferior_p(d - 1.0, 0.1) > 0.99
    assert pv.lower_p(-np.abs(d) - 0.01) == pytest.approx(1 / 256)
    assert pv.lower_p(np.zeros(8)) == 1.0


def test_retest_margin_and_power():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.9, 32)
    b = a + rng.normal(0, 0.01, 32)
    r = pv.retest(a, b)
    assert r["sd"] == pytest.approx(np.std(a - b, ddof=1))
    assert r["icc"] > 0.99
    assert r["margin"] == max(0.02, np.ceil(1.96 * r["sd"] * 100) / 100)
    assert pv.retest(a, a)["margin"] == pv.MIN_MARGIN
    # a margin ten SDs wide always passes; one a tenth of an SD wide rarely does
    diffs = a - b
    assert pv.power(diffs, 10 * r["sd"], sims=500) > 0.99
    assert pv.power(diffs, 0.1 * r["sd"], sims=500) < 0.3


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    root = tmp_path_factory.mktemp("pv")
    parents = MODELS / "paper_r0.5" / "deceptive"
    blind = root / "blind"
    blind.mkdir()
    state = torch.load(parents / "final_model.pt", weights_only=True)
    state["model"]["actor.weights.0"][core.BLUE :: 2, core.BLUE_RED_SLOTS] = 0.0
    torch.save(state, blind / "final_model.pt")
    (blind / "config.yaml").write_text((parents / "config.yaml").read_text())
    out = root / "out"
    result = pv.validate(
        parents, parents, parents, blind, out, budgets=(16, 32), sims=200, log=lambda _: None
    )
    return result, out


def test_validation_runs_the_protocol(validated):
    result, out = validated
    assert json.loads((out / "probe_v2.json").read_text()) == result
    assert len(result["seeds"]) == 8 and set(result["budgets"]) == {"16", "32"}
    assert all(a in pv.probes.ALPHA_GRID for a in result["alpha"])
    assert np.array(result["alpha_median_d"]).shape == (2, len(pv.probes.ALPHA_GRID))
    entry = result["budgets"]["32"]
    for s in ("A", "B"):
        values = np.array(entry[s]["red_decodability"])
        assert values.shape == (8,) and np.all((values >= 0) & (values <= 1))
    r = entry["retest"]["red_decodability"]
    a, b = (np.array(entry[s]["red_decodability"]) for s in ("A", "B"))
    assert r["sd"] == pytest.approx(np.std(a - b, ddof=1))
    assert result["budget"] in (16, 32) and result["margin"] >= pv.MIN_MARGIN
    checks = result["checks"]
    # red's slots zeroed: exactly at the floor, and below the parents (they read red)
    assert checks["blinded_at_floor"]["max_gap_to_context"] == 0.0
    assert checks["blinded_at_floor"]["pass"]
    # an arm identical to its control is non-inferior at any margin
    assert checks["positive_control"]["hodges_lehmann"] == 0.0
    assert checks["positive_control"]["pass"]
    parents = np.array(result["arms"]["parents"]["red_decodability"])
    assert np.array_equal(
        parents, np.array(result["budgets"][str(result["budget"])]["A"]["red_decodability"])
    )
    assert len(result["arms"]["doubled"]["red_decodability"]) == 8
    at = result["budgets"][str(result["budget"])]
    assert result["arms"]["parents"]["red_decodability_v1"] == at["v1"]["A"]
    md = (out / "probe_v2.md").read_text()
    assert md == pv.report(result)
    assert "| positive_control | +0.000 | +0.000 | 0 |" in md
    assert f"Budget: {result['budget']} episodes per seed" in md
    for k, a in enumerate(result["alpha"]):
        assert f"| {a:g} |" in next(r for r in md.splitlines() if r.startswith(f"| h{k + 1} |"))


def test_budgets_must_split_over_the_evaluation_seeds(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        pv.validate(tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, budgets=(12,))


def test_regeneration_compares_per_seed(tmp_path):
    def arms(path, luring):
        rec = {"stage": "pos", "luring": {"values": luring}, "goal": {"values": [0.1, 0.2, 0.3]}}
        path.write_text(json.dumps([rec, {**rec, "stage": "other"}]))
        return path

    new = arms(tmp_path / "new.json", [0.1, -0.2, 0.3])
    old = arms(tmp_path / "old.json", [0.1, -0.25, 0.3])
    old.write_text(json.dumps(json.loads(old.read_text())[:1]))  # "other" is not committed
    r = pv.regeneration(new, old)
    assert set(r) == {"pos"}
    assert r["pos"]["luring"]["identical"] == 2
    assert r["pos"]["luring"]["max_abs_diff"] == pytest.approx(0.05)
    goal = r["pos"]["goal"]
    assert (goal["n"], goal["identical"], goal["max_abs_diff"]) == (3, 3, 0.0)
    assert goal["mean_new"] == goal["mean_committed"] == pytest.approx(0.2)


def test_the_committed_validation_recomputes_from_its_per_seed_values():
    """docs/results/probe_v2/: the frozen α is the one the validation chose, and every
    check, the margin and the tables follow from the committed per-seed values."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "results" / "probe_v2"
    r = json.loads((folder / "probe_v2.json").read_text())
    assert list(pv.probes.PROBE_ALPHA) == r["alpha"]
    assert pv.checks(r["arms"], r["margin"]) == r["checks"]
    for b, entry in r["budgets"].items():
        a, bb = (np.array(entry[s]["red_decodability"]) for s in ("A", "B"))
        assert pv.retest(a, bb) == entry["retest"]["red_decodability"], b
    assert r["margin"] == r["budgets"][str(r["budget"])]["retest"]["red_decodability"]["margin"]
    assert pv.report(r) == (folder / "probe_v2.md").read_text()
    regen = r["regeneration"]
    assert all(m["identical"] == m["n"] == 32 for arm in regen.values() for m in arm.values())
