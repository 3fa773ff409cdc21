"""The counterfactual-red probe and the donor probes' ceilings (docs/spec.md §4.4, issue 32
item 3): donors that differ in red's hidden variable (a scripted red's type, red's speed),
the ceilings measured against hand counts, blue's view under the probe, the probe in
``evaluate``'s metrics.json and in the closed-loop gate, and the default environment,
where it is not defined."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from soo_marl import metrics, rundir
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.analysis import tables
from soo_marl.analysis.closed_loop import COUNTERFACTUAL_PROBES, closed_loop_gate, pilot_row
from soo_marl.envs import core
from soo_marl.evaluate import evaluate_runs
from soo_marl.rollout import (
    DEFAULT_EVAL_SEEDS,
    counterfactual_donors,
    donor_ceiling,
    hidden_classes,
    probe_hidden_variable,
    rollout,
    shuffle_derangement,
    start_uniforms,
)
from soo_marl.seed_values import read_seed_values

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"
T = core.EnvConfig(red_policy="scripted", red_contrarian_prob=0.5, sight_radius=0.5)
TL25 = T.with_(red_contrarian_prob=0.25, red_speed_min=0.3, red_speed_max=1.0)
L = core.EnvConfig(red_speed_min=0.3, red_speed_max=1.0, red_leash=5, sight_radius=0.5)


def _uniforms(cfg: core.EnvConfig, episodes: int = 500) -> np.ndarray:
    return start_uniforms(DEFAULT_EVAL_SEEDS, episodes, core.reset_draws(cfg))


# ------------------------------------------------------------------ the hidden variables


def test_hidden_variables_are_the_reset_draws():
    u = _uniforms(TL25, 50)
    hidden = core.red_hidden_variables(TL25, u)
    # column 9 red's speed factor, the last column the scripted red's type (§1.3)
    np.testing.assert_array_equal(hidden["red_speed"], 0.3 + u[:, 9] * 0.7)
    np.testing.assert_array_equal(hidden["red_type"], u[:, -1] < 0.25)
    state = core.reset_from_uniforms(TL25, u)
    np.testing.assert_array_equal(hidden["red_type"], state.red_contrarian)
    assert core.red_hidden_variables(core.EnvConfig(), _uniforms(core.EnvConfig(), 5)) == {}
    assert set(core.red_hidden_variables(L, _uniforms(L, 5))) == {"red_speed"}


@pytest.mark.parametrize(
    "cfg, name",
    [
        (core.EnvConfig(), None),
        (core.EnvConfig(red_delay_max=3), None),  # the start delay is not the probe's
        (core.EnvConfig(red_policy="scripted"), None),  # p = 0: every red a follower
        (T.with_(red_contrarian_prob=1.0), None),
        (core.EnvConfig(red_speed_min=0.5, red_speed_max=0.5), None),  # a constant factor
        (T, "red_type"),
        (TL25, "red_type"),  # the type first, when both vary
        (L, "red_speed"),
        (T.with_(red_contrarian_prob=0.0, red_speed_min=0.3, red_speed_max=1.0), "red_speed"),
    ],
)
def test_which_hidden_variable_the_probe_swaps(cfg, name):
    assert probe_hidden_variable(cfg) == name
    u = _uniforms(cfg, 20)
    if name is None:
        assert hidden_classes(cfg, u) is None
        assert counterfactual_donors(cfg, u) is None
        assert donor_ceiling(cfg, u, shuffle_derangement(len(u))) is None


# ------------------------------------------------------------------ donors and ceilings


@pytest.mark.parametrize("cfg, p", [(T, 0.5), (TL25, 0.25)])
def test_every_counterfactual_donor_has_the_other_type(cfg, p):
    u = _uniforms(cfg)
    contrarian = u[:, -1] < p  # the type, straight from its start draw (§1.13)
    donors = counterfactual_donors(cfg, u)
    assert donors.shape == (4000,)
    assert np.all(contrarian[donors] != contrarian)
    assert np.array_equal(donors, counterfactual_donors(cfg, u))  # deterministic
    assert donor_ceiling(cfg, u, donors) == 1.0
    # every red of the rarer type donates, to about (1 − p) / p episodes each
    assert set(donors[~contrarian]) == set(np.flatnonzero(contrarian))


@pytest.mark.parametrize("cfg, p", [(T, 0.5), (TL25, 0.25)])
def test_the_shuffled_ceiling_is_the_share_of_type_differing_donors(cfg, p):
    u = _uniforms(cfg)
    contrarian = u[:, -1] < p
    shuffled = shuffle_derangement(len(u))
    measured = np.mean(contrarian[shuffled] != contrarian)
    assert donor_ceiling(cfg, u, shuffled) == measured
    assert measured == pytest.approx(2 * p * (1 - p), abs=0.03)  # well below 1


def test_speed_donors_are_distant_and_in_the_other_half():
    u = _uniforms(L)
    speed = 0.3 + u[:, 9] * 0.7
    fast = speed >= 0.65
    donors = counterfactual_donors(L, u)
    assert np.all(fast[donors] != fast)
    assert donor_ceiling(L, u, donors) == 1.0
    gap = np.abs(speed[donors] - speed)
    # quantile-matched across the halves: about half the range (0.35) apart, every one
    assert gap.mean() == pytest.approx(0.35, abs=0.01) and gap.min() > 0.3
    assert len(set(donors.tolist())) > 0.95 * len(u)  # nearly a permutation
    shuffled = shuffle_derangement(len(u))
    assert donor_ceiling(L, u, shuffled) == np.mean(fast[shuffled] != fast)


def test_one_class_only_has_no_donors():
    u = _uniforms(T, 5)[:3]
    u[:, -1] = 0.9  # three followers
    assert counterfactual_donors(T, u) is None
    with pytest.raises(ValueError, match="hidden variable"):
        rollout(T, u, _model(T, 1), lambda o: np.zeros((len(o), 2)), counterfactual_red=True)


# ------------------------------------------------------------------ blue's view


def _model(cfg: core.EnvConfig, n_seeds: int) -> MADDPG:
    dims = core.obs_dims(cfg)
    return MADDPG(MADDPGConfig(), list(range(n_seeds)), list(dims), [2, 2])


@pytest.mark.parametrize("velocity", [False, True])
def test_blue_sees_the_donors_red_slots_and_a_deaf_blue_plays_as_sighted(velocity):
    cfg = T.with_(max_cycles=6, blue_sees_velocity=velocity)
    u = start_uniforms([155], 12, core.reset_draws(cfg))
    model, seen = _model(cfg, 2), []

    def blue(obs: np.ndarray) -> np.ndarray:  # records what it is shown, walks to the goal
        seen.append(obs.copy())
        return obs[:, 0:2] / np.maximum(np.linalg.norm(obs[:, 0:2], axis=1, keepdims=True), 1e-9)

    traj = rollout(cfg, u, model, blue, counterfactual_red=True)
    donors = counterfactual_donors(cfg, u)
    contrarian = u[:, -1] < 0.5
    assert np.all(contrarian[donors] != contrarian)
    dim = core.obs_dims(cfg)[1]
    shown = np.stack(seen, axis=1).reshape(2, 12, 6, dim)
    real = traj["obs_blue"][:, :, :-1]
    slots = core.red_slots(cfg)
    assert len(slots) == (4 if velocity else 2)
    assert np.array_equal(shown[..., slots], real[:, donors][..., slots])
    others = np.setdiff1d(np.arange(dim), slots)
    assert np.array_equal(shown[..., others], real[..., others])
    # a blue that ignores red behaves exactly as sighted under the probe
    plain = rollout(cfg, u, model, blue)
    for key in ("blue_pos", "red_pos", "trapped"):
        assert np.array_equal(plain[key], traj[key]), key


def test_the_probe_refuses_scripted_blues_other_probes_and_no_hidden_variable():
    model, u = _model(T, 1), _uniforms(T, 4)
    with pytest.raises(ValueError, match="scripted"):
        rollout(T, u, model, "to_goal", counterfactual_red=True)
    with pytest.raises(ValueError, match="pick one"):
        rollout(T, u, model, model, shuffle_red=True, counterfactual_red=True)
    default = core.EnvConfig(max_cycles=2)
    with pytest.raises(ValueError, match="hidden variable"):
        rollout(default, start_uniforms([155], 4), _model(default, 1), model,
                counterfactual_red=True)  # fmt: skip


# ------------------------------------------------------------------ evaluate and the gate


@pytest.fixture(scope="module")
def evaluated_t(tmp_path_factory):
    """The committed design-T pilot's deceptive baseline (scripted red, p = 0.5),
    evaluated on 2 × 8 episodes."""
    run = tmp_path_factory.mktemp("cf") / "deceptive"
    shutil.copytree(MODELS / "closed_loop_pilot_T" / "deceptive", run)
    (result,) = evaluate_runs([run], episodes=8, eval_seeds=[155, 714], progress=False).values()
    return result


def test_evaluate_reports_the_counterfactual_probe_and_the_ceilings(evaluated_t):
    m = evaluated_t
    assert m["hidden_variable"] == "red_type"
    assert set(m["counterfactual"]) == set(m["shuffled"])
    luring = np.array(m["luring_delta_trap"]["values"])
    cf = np.array(m["counterfactual"]["luring_delta_trap"]["values"])
    np.testing.assert_allclose(m["closed_loop_share_counterfactual"]["values"], luring - cf)
    np.testing.assert_allclose(
        cf,
        np.array(m["counterfactual"]["trap_rate"]["values"])
        - np.array(m["probes"]["to_goal"]["trap_rate"]["values"]),
    )
    # the ceilings: measured against the types of the evaluation's own start draws
    u = start_uniforms([155, 714], 8, core.reset_draws(T))  # T's draws: 9 + the type
    contrarian = u[:, -1] < 0.5
    shuffled = shuffle_derangement(16)
    assert m["shuffled_ceiling"] == np.mean(contrarian[shuffled] != contrarian)
    assert m["counterfactual_ceiling"] == 1.0
    # the report's table shows them
    row = tables.blind_table([m]).splitlines()
    assert "counterfactual-red luring Δtrap" in row[0] and tables.CEILING_TITLE in row[0]
    assert tables.fmt(m["closed_loop_share_counterfactual"]) in row[2]
    assert f"{m['shuffled_ceiling']:.3f} / 1.000" in row[2]
    # and seed_values.json keeps them: the per-seed measures and the ceilings
    record = read_seed_values(rundir.eval_dir(m["run"]))
    assert record["measures"]["counterfactual.luring_delta_trap"] == cf.tolist()
    assert "closed_loop_share_counterfactual" in record["measures"]
    assert record["evaluation"]["hidden_variable"] == "red_type"
    assert record["evaluation"]["shuffled_ceiling"] == m["shuffled_ceiling"]
    assert record["evaluation"]["counterfactual_ceiling"] == 1.0


def _gate_json(luring, blind, shuffled, counterfactual, ceilings=(0.5, 1.0)) -> dict:
    def s(v):
        return metrics.summarize(v, method="t")

    out = {
        "luring_delta_trap": s(luring),
        "blind": {"luring_delta_trap": s(blind), "red_goal_rate": s([0.5] * 4)},
        "shuffled": {"luring_delta_trap": s(shuffled)},
        "metrics": {"red_goal_rate": s([0.8] * 4), "blue_goal_rate": s([0.9] * 4),
                    "trap_rate": s([0.5] * 4)},
        "shuffled_ceiling": ceilings[0],
        "counterfactual_ceiling": ceilings[1],
    }  # fmt: skip
    if counterfactual is not None:
        out["counterfactual"] = {"luring_delta_trap": s(counterfactual)}
    return out


def test_the_gate_computes_the_counterfactual_share_and_judges_it_when_asked():
    luring = [0.30, 0.34, 0.26, 0.30]
    honest = _gate_json([0.0, 0.02, -0.02, 0.0], [0.0] * 4, [0.0] * 4, [0.0] * 4)
    honest["metrics"]["red_goal_rate"] = metrics.summarize([0.8, 0.75, 0.85, 0.8], method="t")
    # shuffled share 20% (fails), counterfactual share 60% (holds), blind 67%
    dec = _gate_json(luring, [0.10, 0.12, 0.08, 0.10], [0.24, 0.28, 0.2, 0.24],
                     [0.12, 0.12, 0.10, 0.14])  # fmt: skip
    g = closed_loop_gate(dec, honest)  # the pre-registered gate: blind and shuffled
    assert g["share_counterfactual"]["mean"] == pytest.approx(0.18)
    assert g["share_counterfactual_of_sighted"] == pytest.approx(0.6)
    assert (g["shuffled_ceiling"], g["counterfactual_ceiling"], g["blind_ceiling"]) == (
        0.5, 1.0, 1.0
    )  # fmt: skip
    assert "luring_needs_red_counterfactual" not in g["conditions"]
    assert not g["conditions"]["luring_needs_red_shuffled"] and not g["passes"]
    g2 = closed_loop_gate(dec, honest, COUNTERFACTUAL_PROBES)  # issue 32's condition 2
    assert g2["conditions"]["luring_needs_red_counterfactual"] and g2["passes"]
    assert "luring_needs_red_shuffled" not in g2["conditions"]
    assert g2["share_shuffled"] == g["share_shuffled"]  # still reported
    row = pilot_row(g2)
    assert row["share / sighted (counterfactual)"] == "60%"
    assert row["ceiling: shuffled / counterfactual"] == "50% / 100%"
    # a file without the probe (no hidden variable, or older): reported absent, not judged
    old = _gate_json(luring, [0.10] * 4, [0.12] * 4, None, ceilings=(None, None))
    g3 = closed_loop_gate(old, honest)
    assert "share_counterfactual" not in g3 and g3["shuffled_ceiling"] is None
    assert pilot_row(g3)["closed-loop share (counterfactual)"] == "–"
    with pytest.raises(ValueError, match="counterfactual"):
        closed_loop_gate(old, honest, COUNTERFACTUAL_PROBES)
