"""The probes that do not rely on the learned "out of sight" code (docs/spec.md §4.3,
§4.4, §4.15, §4.16), each on a constructed case with a known answer: shuffled red,
trapped steps, red decodability and the red-slot weight norm; and the report tables
that show them."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from soo_marl import metrics, probes
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.analysis import tables
from soo_marl.envs import core
from soo_marl.evaluate import evaluate_runs
from soo_marl.rollout import rollout, shuffle_derangement, start_uniforms

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"
BLUE = core.BLUE  # agent index of blue in the stacked actors
DIMS = ([core.OBS_DIM_RED, core.OBS_DIM_BLUE], [core.ACTION_DIM, core.ACTION_DIM])


def _model(n_seeds: int) -> MADDPG:
    return MADDPG(MADDPGConfig(), list(range(n_seeds)), *DIMS)


def _set_blue_first_layer(model: MADDPG, seed: int, copy_red: bool) -> None:
    """Seed ``seed``'s blue: first layer ignores red (zero rows 6–7), or, with
    ``copy_red``, only copies red's offset into four hidden units (±x, ±y)."""
    w, b = model.actor.weights[0], model.actor.biases[0]
    member = seed * model.n_agents + BLUE
    with torch.no_grad():
        if copy_red:
            w[member] = 0.0
            b[member] = 0.0
            for unit, (slot, sign) in enumerate(((6, 1.0), (6, -1.0), (7, 1.0), (7, -1.0))):
                w[member, slot, unit] = sign
        else:
            w[member, core.BLUE_RED_SLOTS] = 0.0


# --------------------------------------------------------------------------- shuffled red


@pytest.mark.parametrize("n", [2, 3, 7, 10, 4000])
def test_shuffle_derangement_is_a_permutation_without_fixed_points(n):
    d = shuffle_derangement(n)
    assert sorted(d.tolist()) == list(range(n))
    assert not np.any(d == np.arange(n))
    assert np.array_equal(d, shuffle_derangement(n))  # fixed


def test_shuffle_derangement_needs_two_episodes():
    with pytest.raises(ValueError, match="at least 2"):
        shuffle_derangement(1)


def test_shuffled_red_shows_blue_another_episodes_red_slots():
    cfg = core.EnvConfig(sight_radius=0.5, max_cycles=6)
    model = _model(2)
    u = start_uniforms([155], 5)
    seen = []

    def blue(obs: np.ndarray) -> np.ndarray:  # records what it is shown, walks to the goal
        seen.append(obs.copy())
        return obs[:, 0:2] / np.maximum(np.linalg.norm(obs[:, 0:2], axis=1, keepdims=True), 1e-9)

    traj = rollout(cfg, u, model, blue, shuffle_red=True)
    donors = shuffle_derangement(5)
    shown = np.stack(seen, axis=1).reshape(2, 5, 6, core.OBS_DIM_BLUE)  # (S, N, T, 10)
    real = traj["obs_blue"][:, :, :-1]  # recorded: what the environment showed
    assert np.array_equal(shown[..., core.BLUE_RED_SLOTS], real[:, donors][..., 6:8])
    others = np.ones(core.OBS_DIM_BLUE, bool)
    others[core.BLUE_RED_SLOTS] = False
    assert np.array_equal(shown[..., others], real[..., others])
    assert not np.array_equal(shown[..., 6:8], real[..., 6:8])  # not its own red
    # recorded trajectories are the real ones: red in sight exactly where slots are non-zero
    assert np.array_equal(np.any(real[..., 6:8] != 0, -1), traj["red_visible"][:, :, :-1])
    # this blue ignores red: shuffling changes nothing it does
    plain = rollout(cfg, u, model, blue)
    assert np.array_equal(plain["blue_pos"], traj["blue_pos"])


def test_shuffled_red_refuses_scripted_blues_and_blinding():
    cfg = core.EnvConfig(max_cycles=2)
    model, u = _model(1), start_uniforms([155], 2)
    with pytest.raises(ValueError, match="scripted"):
        rollout(cfg, u, model, "to_goal", shuffle_red=True)
    with pytest.raises(ValueError, match="pick one"):
        rollout(cfg, u, model, model, blind_blue=True, shuffle_red=True)


# --------------------------------------------------------------------------- trapped steps


def test_trapped_steps_on_a_hand_made_array():
    # 2 seeds × 2 episodes × T+1 = 5 states; the flag is absorbing
    trapped = np.array(
        [
            [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0]],  # 3 steps, 0 → 1.5
            [[0, 0, 0, 0, 1], [0, 1, 1, 1, 1]],  # 1 step, 4 steps → 2.5
        ],
        dtype=bool,
    )
    assert metrics.trapped_steps(trapped).tolist() == [1.5, 2.5]
    assert metrics.trapped_steps(trapped[0, 1:]) == 0.0  # one (N, T+1) set
    # a flag at state 0 is not a step (it never is in practice: resets are untrapped)
    assert metrics.trapped_steps(np.array([[1, 0, 0]], bool)) == 0.0


# ---------------------------------------------------------------------- red decodability


def test_cv_r2_on_synthetic_features():
    rng = np.random.default_rng(0)
    target = rng.standard_normal((4000, 2))
    episode = np.arange(4000) // 20  # 200 episodes of 20 rows
    noise = rng.standard_normal((4000, 20))
    r2 = probes.cv_r2(noise, target, episode)
    assert r2.shape == (len(probes.ALPHA_GRID),)
    assert np.all(np.abs(r2) < 0.02)
    mixed = np.concatenate([noise, target @ rng.standard_normal((2, 3))], axis=1)
    assert probes.cv_r2(mixed, target, episode, alphas=(1.0,))[0] > 0.9999
    half = np.concatenate([noise, target[:, :1]], axis=1)  # only x: R² = share of x's variance
    assert probes.cv_r2(half, target, episode, alphas=(1.0,))[0] == pytest.approx(0.5, abs=0.03)
    const = np.concatenate([np.ones((4000, 1)), target], axis=1)  # a constant unit is harmless
    assert probes.cv_r2(const, target, episode, alphas=(1.0,))[0] > 0.9999
    # one episode: one fold, nothing to cross-validate
    assert np.isnan(probes.cv_r2(noise[:20], target[:20], episode[:20])).all()
    assert probes.bounded(np.array([-3.0, 0.5, np.nan]))[:2].tolist() == [0.0, 0.5]
    assert np.isnan(probes.bounded(np.array([np.nan])))[0]


def test_cv_folds_are_grouped_by_episode():
    """A feature that identifies the episode, with a target constant within an episode:
    split by row the probe memorises episodes; grouped by episode it cannot."""
    rng = np.random.default_rng(2)
    episodes, rows = 100, 20
    episode = np.repeat(np.arange(episodes), rows)
    code = rng.standard_normal((episodes, 120))[episode]  # more features than episodes
    target = rng.standard_normal((episodes, 2))[episode]
    by_row = probes.cv_r2(code, target, np.arange(len(code)), alphas=(1e-2,))[0]
    by_episode = probes.cv_r2(code, target, episode, alphas=(1e-2,))[0]
    assert by_row > 0.9 and by_episode < 0.1


def test_sd_floor_bounds_a_near_constant_unit():
    """A unit nearly constant where the probe is fitted and large where it is tested sent
    v1 (raw per-unit SD) far below 0; v2's SD floor keeps the probe near its value
    without the unit."""
    rng = np.random.default_rng(3)
    episode = np.repeat(np.arange(200), 20)
    target = rng.standard_normal((4000, 2))
    good = target @ rng.standard_normal((2, 4)) + rng.standard_normal((4000, 4))
    odd = episode % 2 == 1
    wild = np.where(odd, rng.standard_normal(4000), 1e-7 * rng.standard_normal(4000))
    base = probes.cv_r2(good, target, episode, alphas=(1.0,))[0]
    with_wild = np.concatenate([good, wild[:, None]], 1)
    assert probes.red_decodability_v1(with_wild, target, ~odd) < -10  # v1 extrapolates
    # v2: in the folds fitted on even episodes only... every fold mixes both, so the floor
    # is what bounds it; the unit adds nothing and costs little
    assert probes.cv_r2(with_wild, target, episode, alphas=(1.0,))[0] > base - 0.05
    assert probes.red_decodability_v1(good, target, ~odd) == pytest.approx(base, abs=0.05)


def test_network_ignoring_red_gives_r2_zero_and_copying_red_gives_one():
    model = _model(2)
    _set_blue_first_layer(model, 0, copy_red=False)
    _set_blue_first_layer(model, 1, copy_red=True)
    rng = np.random.default_rng(1)
    rows = 20_000
    obs = rng.uniform(-1, 1, (rows, core.OBS_DIM_BLUE)).astype(np.float32)
    obs[:, 8:] = 0.0
    target = obs[:, core.BLUE_RED_SLOTS].astype(np.float64)  # red independent of the rest
    episode = np.arange(rows) // 10
    ignores = probes.hidden_layers(model, obs, 0)
    copies = probes.hidden_layers(model, obs, 1)
    assert [h.shape for h in ignores] == [(rows, 64), (rows, 64)]
    assert np.array_equal(np.concatenate(ignores, 1), probes.blue_hidden(model, obs, 0))
    assert all(abs(probes.cv_r2(h, target, episode, (1.0,))[0]) < 0.02 for h in ignores)
    assert probes.cv_r2(copies[0], target, episode, (1.0,))[0] > 0.999  # h1 holds red


def test_decodability_per_seed_on_a_rollout_and_from_the_exported_arrays():
    cfg = core.EnvConfig(sight_radius=0.5, max_cycles=20)
    model = _model(2)
    _set_blue_first_layer(model, 0, copy_red=False)
    _set_blue_first_layer(model, 1, copy_red=True)
    traj = rollout(cfg, start_uniforms([155, 714], 30), model, model)
    # the rebuilt observations are what the environment showed
    assert np.array_equal(probes.blue_observations(cfg, traj), traj["obs_blue"])
    r2 = probes.red_decodability_per_seed(model, cfg, traj)
    assert set(r2) == {
        "red_decodability", "red_decodability_h1", "red_decodability_h2",
        "red_decodability_context",
    }  # fmt: skip
    for v in r2.values():
        assert np.all((v >= 0) & (v <= 1))
    # seed 0 ignores red: its activations are the same with or without red's slots
    assert r2["red_decodability"][0] == r2["red_decodability_context"][0]
    assert r2["red_decodability"][1] > 0.999  # seed 1 copies red's offset
    assert r2["red_decodability"][1] == max(
        r2["red_decodability_h1"][1], r2["red_decodability_h2"][1]
    )
    assert r2["red_decodability_context"][1] < 0.1  # … and holds nothing else
    # doubling red's slots leaves an ignoring blue as it was and keeps a copying one at 1
    doubled = probes.red_decodability_per_seed(probes.scale_red_slots(model, 2.0), cfg, traj)
    assert doubled["red_decodability"][0] == r2["red_decodability"][0]
    assert doubled["red_decodability"][1] > 0.999
    w = model.actor.weights[0].detach()
    w2 = probes.scale_red_slots(model, 2.0).actor.weights[0].detach()
    assert torch.equal(w2[BLUE::2, core.BLUE_RED_SLOTS], 2 * w[BLUE::2, core.BLUE_RED_SLOTS])
    assert torch.equal(w2[core.RED :: 2], w[core.RED :: 2])
    # recomputed from float32 arrays, as trajectories.npz stores them
    stored = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in traj.items()}
    again = probes.red_decodability_per_seed(model, cfg, stored)
    for k, v in r2.items():
        assert np.allclose(again[k], v, atol=1e-4), k


# ---------------------------------------------------------------------- red-slot weight norm


def test_red_slot_norms_on_hand_set_weights():
    model = _model(3)
    w = model.actor.weights[0]  # (seeds × agents, 10, 64); member = seed · 2 + agent
    with torch.no_grad():
        w[0 * 2 + BLUE] = 0.0
        w[0 * 2 + BLUE, 6, 0], w[0 * 2 + BLUE, 7, 5] = 3.0, 4.0  # norm 5
        w[0 * 2 + BLUE, 0, 0] = 12.0  # other slots: norm 12
        w[1 * 2 + BLUE, core.BLUE_RED_SLOTS] = 0.0  # ignores red
        w[2 * 2 + BLUE, core.BLUE_RED_SLOTS] = 0.5
        w[0 * 2 + core.RED] = 100.0  # red's weights must not leak into blue's measure
    red, rest = probes.model_red_slot_norms(model)
    assert red.tolist()[:2] == [5.0, 0.0] and rest[0] == 12.0
    assert red[2] == pytest.approx(0.5 * math.sqrt(2 * w.shape[-1]))


# ------------------------------------------------------------------ evaluate and report


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The committed paper r0.5 deceptive baseline, evaluated on 2 × 8 episodes, and a copy
    whose blue's first layer ignores red."""
    root = tmp_path_factory.mktemp("probes")
    run = root / "deceptive"
    shutil.copytree(MODELS / "paper_r0.5" / "deceptive", run)
    deaf = root / "deaf"
    deaf.mkdir()
    state = torch.load(run / "final_model.pt", weights_only=True)
    state["model"]["actor.weights.0"][BLUE::2, core.BLUE_RED_SLOTS] = 0.0
    torch.save(state, deaf / "final_model.pt")
    (deaf / "config.yaml").write_text((run / "config.yaml").read_text())
    return evaluate_runs([run, deaf], episodes=8, eval_seeds=[155, 714], progress=False)


def test_evaluate_reports_the_new_probes(evaluated):
    m, deaf = evaluated["deceptive r0.5 (deceptive)"], evaluated["deceptive r0.5 (deaf)"]
    s = len(m["seeds"])
    assert set(m["shuffled"]) == {
        "trap_rate", "luring_delta_trap", "blue_at_fake", "blue_goal_rate", "red_goal_rate",
        "trapped_steps",
    }  # fmt: skip
    # a blue that ignores red's slots plays the same blind: red reaches the goal as often
    np.testing.assert_allclose(
        deaf["blind"]["red_goal_rate"]["values"], deaf["metrics"]["red_goal_rate"]["values"]
    )
    luring = np.array(m["luring_delta_trap"]["values"])
    shuffled = np.array(m["shuffled"]["luring_delta_trap"]["values"])
    assert np.allclose(m["closed_loop_share_shuffled"]["values"], luring - shuffled)
    assert np.allclose(
        shuffled,
        np.array(m["shuffled"]["trap_rate"]["values"])
        - np.array(m["probes"]["to_goal"]["trap_rate"]["values"]),
    )
    for key in ("red_decodability", "red_decodability_context", "red_slot_norm"):
        assert m[key]["n"] == s, key
    # a blue whose red-slot weights are 0 reads exactly at its context-only floor
    assert deaf["red_decodability"]["values"] == deaf["red_decodability_context"]["values"]
    assert min(m["red_slot_norm"]["values"]) > 0
    # every new per-seed measure: recomputable from trajectories.npz and the saved weights
    again = probes.recompute(Path(m["run"]))
    assert again["trapped_steps"].tolist() == m["metrics"]["trapped_steps"]["values"]
    for key in ("red_slot_norm", "other_slot_norm"):
        assert again[key].tolist() == m[key]["values"], key
    for key in (
        "red_decodability",
        "red_decodability_h1",
        "red_decodability_h2",
        "red_decodability_context",
    ):
        assert np.allclose(again[key], m[key]["values"], rtol=1e-3, atol=1e-3), key
    # the default environment has no hidden variable of red: no counterfactual probe, no
    # ceilings (docs/spec.md §4.4)
    for key in ("hidden_variable", "shuffled_ceiling", "counterfactual", "counterfactual_ceiling",
                "closed_loop_share_counterfactual"):  # fmt: skip
        assert m[key] is None, key
    # a blue that ignores red: nothing to shuffle, nothing read, activations blind to red
    assert deaf["closed_loop_share_shuffled"]["values"] == [0.0] * s
    assert deaf["red_slot_norm"]["values"] == [0.0] * s
    assert deaf["red_decodability"]["values"] == deaf["red_decodability_context"]["values"]


def test_report_tables_show_the_new_probes(evaluated):
    ms = list(evaluated.values())
    blind = tables.blind_table(ms)
    for title in ("shuffled-red luring Δtrap", "closed-loop share (shuffled red)"):
        assert title in blind.splitlines()[0]
    m = evaluated["deceptive r0.5 (deceptive)"]
    row = next(r for r in blind.splitlines() if r.startswith(f"| {m['label']} |"))
    assert tables.fmt(m["shuffled"]["luring_delta_trap"]) in row
    assert tables.fmt(m["closed_loop_share_shuffled"]) in row
    rep = tables.representation_table(ms)
    head = rep.splitlines()[0]
    for title in (
        "trapped steps",
        "red decodability D",
        "D without red's slots",
        "red-slot weight norm",
        *tables.SATURATION_TITLES,
    ):
        assert title in head, title
    rows = rep.splitlines()[2:]
    assert len(rows) == len(ms)
    for m, row in zip(ms, rows, strict=True):
        assert tables.fmt(m["red_decodability"]) in row
        assert tables.fmt(m["red_slot_norm"], 2) in row
        assert tables.fmt(m["metrics"]["trapped_steps"], 2) in row
        sat = m["saturation"]
        assert f"| {sat['saturated_actors']}/{sat['actors']} |" in row
    # a metrics.json from before these probes: dashes, no error
    old = {"label": "old", "seeds": [0], "metrics": {}}
    assert tables.representation_table([old]).splitlines()[2] == "| old |" + " – |" * 9
