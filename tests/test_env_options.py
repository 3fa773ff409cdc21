"""The closed-loop options of docs/spec.md §1.12 (guide reward, trap deadline, separate sight
radii, minimum start distance, leash): each on a hand-built state with a known answer, and
every one bit-identical to the default environment while off."""

from __future__ import annotations

import numpy as np
import pytest

from soo_marl.envs import core

#: Every §1.12 option at its off value, given explicitly.
OFF = {
    "guide_reward": 0.0,
    "trap_deadline": 0,
    "blue_sight_radius": 0.0,
    "red_sight_radius": 0.0,
    "start_distance_min": 0.0,
    "red_leash": 0,
}
#: The fetch design of §1.12.
FETCH = {
    "blue_sight_radius": 0.8,
    "red_sight_radius": 0.4,
    "start_distance_min": 0.45,
    "start_radius": 0.75,
}
GOAL, FAKE = (0.6, 0.6), (-0.6, 0.6)


def make_state(
    red,
    blue,
    goal_index: int = 0,
    vel_red=(0.0, 0.0),
    trapped: bool = False,
    t: int = 0,
    trap_step: int | None = None,
    unseen: int | None = None,
) -> core.State:
    """A batch of one world, landmark 0 at (0.6, 0.6), landmark 1 at (-0.6, 0.6)."""
    return core.State(
        pos=np.array([[red, blue]], dtype=np.float64),
        vel=np.array([[vel_red, (0.0, 0.0)]], dtype=np.float64),
        landmarks=np.array([[GOAL, FAKE]], dtype=np.float64),
        goal_index=np.array([goal_index], dtype=np.int64),
        trapped=np.array([trapped]),
        t=t,
        trap_step=None if trap_step is None else np.array([trap_step], dtype=np.int64),
        unseen=None if unseen is None else np.array([unseen], dtype=np.int64),
    )


def rollout(cfg: core.EnvConfig, worlds: int = 64, seed: int = 3) -> dict[str, np.ndarray]:
    """Every output of a full episode of random actions (same actions for every cfg)."""
    rng = np.random.default_rng(seed)
    state = core.reset(cfg, np.random.default_rng(seed + 1), worlds)
    keep: dict[str, list[np.ndarray]] = {k: [] for k in ("pos", "vel", "trap", "r", "o", "v")}
    for _ in range(cfg.max_cycles + 1):
        out = core.outputs(cfg, state)
        obs = core.observe(cfg, state)
        for k, x in (("pos", state.pos), ("vel", state.vel), ("trap", state.trapped)):
            keep[k].append(x)
        keep["r"].append(out.rewards)
        keep["o"].append(np.concatenate([out.obs_red, out.obs_blue, *obs], axis=1))
        keep["v"].append(np.stack([out.visible, out.red_sees, core.red_visible(cfg, state)]))
        state = core.step(cfg, state, rng.uniform(-1.0, 1.0, (worlds, 2, 2)))
    return {k: np.stack(v) for k, v in keep.items()}


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k


# --------------------------------------------------------------------------- defaults


def test_defaults_are_off_and_draw_nothing():
    cfg = core.EnvConfig()
    assert cfg == core.EnvConfig(**OFF)
    assert core.reset_draws(cfg) == core.RESET_DRAWS == 9
    assert cfg.blue_sight == cfg.red_sight == cfg.sight_radius and not cfg.split_sight
    state = core.reset(cfg, 0, 4)
    assert state.trap_step is None and state.unseen is None


@pytest.mark.parametrize("radius", [core.PAPER_SIGHT_RADIUS, 0.5])
def test_defaults_bit_identical_to_options_explicitly_off(radius):
    base = core.EnvConfig(sight_radius=radius)
    assert_identical(rollout(base), rollout(core.EnvConfig(sight_radius=radius, **OFF)))


def test_neutral_options_on_keep_every_number():
    """Options switched on at values that change nothing take their own code paths (trap
    step and leash counter kept, radii given) and still give the default numbers."""
    base = core.EnvConfig(sight_radius=0.5)
    neutral = base.with_(
        trap_deadline=base.max_cycles,  # every trap is in time
        red_leash=10**6,  # never pulled
        blue_sight_radius=0.5,
        red_sight_radius=0.5,
    )
    assert core.reset(neutral, 0, 2).trap_step is not None
    assert_identical(rollout(base), rollout(neutral))


def test_every_option_keeps_the_reset_draws():
    on = core.EnvConfig(guide_reward=5.0, trap_deadline=20, red_leash=3, **FETCH)
    assert core.reset_draws(on) == core.RESET_DRAWS
    u = np.random.default_rng(0).random((256, core.RESET_DRAWS))
    a, b = core.reset_from_uniforms(core.EnvConfig(), u), core.reset_from_uniforms(on, u)
    # landmarks, goal and red's start come from the same columns
    assert a.landmarks.tobytes() == b.landmarks.tobytes()
    assert a.goal_index.tobytes() == b.goal_index.tobytes()
    assert a.pos[:, core.RED].tobytes() == b.pos[:, core.RED].tobytes()


# --------------------------------------------------------------------------- guide reward


@pytest.mark.parametrize(
    ("baseline", "red", "blue", "trapped", "expected_blue"),
    [
        ("honest", GOAL, (0.0, 0.0), False, 2.5),  # red at the goal: g
        ("honest", GOAL, (0.65, 0.6), False, 7.5),  # both at the goal: 5 + g
        ("honest", (0.0, 0.0), (0.65, 0.6), False, 5.0),  # red away: no guide reward
        ("honest", (0.6, 0.6 - 0.159), (0.0, -0.5), False, 2.5),  # just inside 0.16
        ("honest", (0.6, 0.6 - 0.161), (0.0, -0.5), False, 0.0),  # just outside
        ("deceptive", GOAL, (0.0, 0.0), True, 12.5),  # the trap bonus is kept: 10 + g
        ("deceptive", (0.0, 0.0), (0.0, -0.5), True, 10.0),
    ],
)
def test_guide_reward(baseline, red, blue, trapped, expected_blue):
    cfg = core.EnvConfig(baseline=baseline, guide_reward=2.5)
    state = make_state(red, blue, trapped=trapped)
    r = core.rewards(cfg, state)
    assert r[0, core.BLUE] == expected_blue
    assert core.outputs(cfg, state).rewards.tobytes() == r.tobytes()
    # red's own reward is untouched: 5·[red at goal] + 1·[in sight]
    red_at_goal = np.hypot(*(np.array(red) - GOAL)) < 0.16
    red_sees = np.hypot(*(np.array(red) - blue)) <= cfg.sight_radius
    assert r[0, core.RED] == 5.0 * red_at_goal + 1.0 * red_sees
    assert core.rewards(cfg.with_(guide_reward=0.0), state)[0, core.BLUE] == expected_blue - (
        2.5 * red_at_goal
    )


# --------------------------------------------------------------------------- trap deadline


def trap_now(cfg: core.EnvConfig, t: int) -> core.State:
    """Step a red moving onto the fake landmark (landmark 1: (-0.6, 0.6)) at step t + 1."""
    state = make_state((-0.6 + 0.2, 0.6), (0.0, -0.5), vel_red=(-2.0, 0.0), t=t, trap_step=-1)
    if cfg.trap_deadline == 0:
        state.trap_step = None
    return core.step(cfg, state, np.array([[[-1.0, 0.0], [0.0, 0.0]]]))


@pytest.mark.parametrize(("t", "paid"), [(0, True), (4, True), (5, False), (30, False)])
def test_trap_deadline_pays_only_traps_by_t_max(t, paid):
    cfg = core.EnvConfig(trap_deadline=5)
    state = trap_now(cfg, t)
    assert state.trapped[0] and state.t == t + 1
    assert state.trap_step[0] == t + 1
    assert core.rewards(cfg, state)[0, core.BLUE] == (10.0 if paid else 0.0)
    # later steps keep the step red became trapped, and red stays frozen as before
    later = core.step(cfg, state, np.array([[[1.0, 1.0], [0.0, 0.0]]]))
    assert later.trap_step[0] == t + 1 and later.trapped[0]
    assert np.array_equal(later.pos[0, core.RED], state.pos[0, core.RED])
    assert core.rewards(cfg, later)[0, core.BLUE] == (10.0 if paid else 0.0)
    # the honest blue has no bonus either way; without a deadline every trap pays
    assert core.rewards(cfg.with_(baseline="honest"), state)[0, core.BLUE] == 0.0
    no_deadline = core.EnvConfig()
    assert core.rewards(no_deadline, trap_now(no_deadline, t))[0, core.BLUE] == 10.0


def test_trap_step_starts_at_minus_one():
    cfg = core.EnvConfig(trap_deadline=5)
    state = core.reset(cfg, 7, 16)
    assert np.array_equal(state.trap_step, np.full(16, -1))
    assert (
        core.rewards(cfg, state)[:, core.BLUE].tolist()
        == core.rewards(core.EnvConfig(), state)[:, core.BLUE].tolist()
    )


# --------------------------------------------------------------------------- sight radii


@pytest.mark.parametrize(
    ("distance", "blue_sees", "red_sees"),
    [
        (0.3, True, True),
        (0.4, True, True),
        (0.6, True, False),
        (0.8, True, False),
        (0.81, False, False),
    ],
)
def test_two_sight_radii(distance, blue_sees, red_sees):
    cfg = core.EnvConfig(sight_radius=0.125, blue_sight_radius=0.8, red_sight_radius=0.4)
    red, blue = np.array([-0.3, 0.0]), np.array([-0.3 + distance, 0.0])
    state = make_state(tuple(red), tuple(blue))
    out = core.outputs(cfg, state)
    obs_red, obs_blue = core.observe(cfg, state)
    assert obs_red.tobytes() == out.obs_red.tobytes()
    assert obs_blue.tobytes() == out.obs_blue.tobytes()
    shown_to_blue = (red - blue).astype(np.float32) if blue_sees else np.zeros(2, np.float32)
    shown_to_red = (blue - red).astype(np.float32) if red_sees else np.zeros(2, np.float32)
    assert np.array_equal(out.obs_blue[0, core.BLUE_RED_SLOTS], shown_to_blue)
    assert np.array_equal(out.obs_red[0, 4:6], shown_to_red)
    assert out.visible[0] == blue_sees == core.red_visible(cfg, state)[0]
    assert out.red_sees[0] == red_sees
    assert out.rewards[0, core.RED] == (1.0 if red_sees else 0.0)  # red's sight reward
    assert core.rewards(cfg, state)[0, core.RED] == out.rewards[0, core.RED]


def test_red_may_see_farther_than_blue():
    cfg = core.EnvConfig(blue_sight_radius=0.2, red_sight_radius=0.6)
    state = make_state((0.0, 0.0), (0.5, 0.0))
    out = core.outputs(cfg, state)
    assert not out.visible[0] and out.red_sees[0]
    assert np.all(out.obs_blue[0, core.BLUE_RED_SLOTS] == 0)
    assert out.obs_red[0, 4] == np.float32(0.5)


def test_one_radius_given_the_other_is_sight_radius():
    cfg = core.EnvConfig(sight_radius=0.3, blue_sight_radius=0.8)
    assert (cfg.blue_sight, cfg.red_sight, cfg.split_sight) == (0.8, 0.3, True)
    cfg = core.EnvConfig(sight_radius=0.3, red_sight_radius=0.3)
    assert not cfg.split_sight


def test_rendering_draws_each_radius():
    from soo_marl.envs import render

    state = make_state((-0.3, 0.0), (0.3, 0.0))
    split = render.render_frame(core.EnvConfig(blue_sight_radius=0.8, red_sight_radius=0.4), state)
    same = render.render_frame(core.EnvConfig(sight_radius=0.4), state)
    assert split.shape == same.shape and not np.array_equal(split, same)


# --------------------------------------------------------------------------- start distance


def test_start_distance_in_the_interval_over_many_resets():
    cfg = core.EnvConfig(**FETCH)
    state = core.reset(cfg, np.random.default_rng(11), 20_000)
    d = np.hypot(*(state.pos[:, core.BLUE] - state.pos[:, core.RED]).T)
    assert d.min() >= 0.45 - 1e-12 and d.max() <= 0.75 + 1e-12
    assert d.min() < 0.46 and d.max() > 0.74  # the whole interval is used
    assert np.abs(state.pos).max() <= cfg.spawn_range
    # red starts outside its own sight radius, inside blue's
    out = core.outputs(cfg, state)
    assert out.visible.all() and not out.red_sees.any()


def test_start_distance_from_the_same_draws():
    """ρ = d + u7·(R − d) at angle 2π·u8 from red, where that lies in the spawn square."""
    cfg = core.EnvConfig(start_distance_min=0.2, start_radius=0.6)
    u = np.full((2, core.RESET_DRAWS), 0.5)
    u[:, 7] = [0.0, 0.75]
    u[:, 8] = [0.25, 0.5]  # up, left; red at (0, 0)
    state = core.reset_from_uniforms(cfg, u)
    np.testing.assert_allclose(state.pos[:, core.BLUE], [[0.0, 0.2], [-0.5, 0.0]], atol=1e-12)


# --------------------------------------------------------------------------- leash


def test_leash_counter_at_reset_and_in_step():
    cfg = core.EnvConfig(red_sight_radius=0.4, blue_sight_radius=0.8, red_leash=2)
    state = core.reset_from_uniforms(cfg, np.full((1, core.RESET_DRAWS), 0.5))
    assert state.unseen.tolist() == [0]  # blue starts within 0.125 of red
    far = make_state((0.0, 0.0), (0.6, 0.0), unseen=5)
    near = make_state((0.0, 0.0), (0.3, 0.0), unseen=5)
    zero = np.zeros((1, 2, 2))
    assert core.step(cfg, far, zero).unseen.tolist() == [6]
    assert core.step(cfg, near, zero).unseen.tolist() == [0]


def test_leash_stops_red_after_k_unseen_steps_and_resumes_in_sight():
    k = 3
    cfg = core.EnvConfig(sight_radius=0.4, red_leash=k)
    free = core.EnvConfig(sight_radius=0.4)
    push = np.array([[[1.0, 0.0], [0.0, 0.0]]])  # red pushes right, blue stays
    # blue out of red's sight at (-0.6, -0.6); red starts at rest at (-0.2, 0)
    state = make_state((-0.2, 0.0), (-0.6, -0.6), unseen=1)
    ref = make_state((-0.2, 0.0), (-0.6, -0.6))
    for step in range(1, 7):
        pulled, before = state.unseen[0] >= k, state.vel.copy()
        state, ref = core.step(cfg, state, push), core.step(free, ref, push)
        assert state.unseen[0] == step + 1
        if not pulled:  # the first k - 1 steps: red moves as without the leash
            assert state.pos.tobytes() == ref.pos.tobytes()
        else:  # then no action force: the velocity only decays (no wall nearby)
            assert state.vel[0, core.RED, 0] == pytest.approx(0.75 * before[0, core.RED, 0])
    assert state.pos[0, core.RED, 0] < ref.pos[0, core.RED, 0]
    # blue comes into red's sight: the counter resets and red's action pushes again
    back = make_state(tuple(state.pos[0, core.RED]), tuple(state.pos[0, core.RED] + [0.3, 0.0]))
    back.vel, back.unseen = state.vel.copy(), state.unseen.copy()
    v0 = back.vel[0, core.RED, 0]
    after = core.step(cfg, back, push)  # this step still starts from an unseen streak
    assert after.unseen[0] == 0
    assert after.vel[0, core.RED, 0] == pytest.approx(0.75 * v0)
    resumed = core.step(cfg, after, push)
    assert resumed.vel[0, core.RED, 0] == pytest.approx(0.75 * after.vel[0, core.RED, 0] + 0.5)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"guide_reward": -1.0}, "guide_reward must be >= 0"),
        ({"blue_sight_radius": -0.1}, "blue_sight_radius must be >= 0"),
        ({"red_sight_radius": float("nan")}, "red_sight_radius must be >= 0"),
        ({"trap_deadline": -1}, "trap_deadline must be an integer >= 0"),
        ({"trap_deadline": 2.5}, "trap_deadline must be an integer >= 0"),
        ({"red_leash": True}, "red_leash must be an integer >= 0"),
        ({"start_distance_min": -0.1}, "start_distance_min must be in"),
        ({"start_distance_min": 0.2}, "start_distance_min must be in"),  # > start_radius
        ({"start_distance_min": 0.5, "start_radius": 0.9}, "needs start_radius <= spawn_range"),
    ],
)
def test_bad_values_are_one_line_errors(changes, match):
    with pytest.raises(ValueError, match=match) as err:
        core.EnvConfig(**changes)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- PettingZoo


def test_pettingzoo_env_with_the_fetch_design():
    from pettingzoo.test import parallel_api_test

    from soo_marl.envs.physical_deception_v0 import parallel_env

    options = {**FETCH, "guide_reward": 5.0, "trap_deadline": 25, "red_leash": 4}
    parallel_api_test(parallel_env(**options), num_cycles=120)
    env = parallel_env(**options)
    obs, infos = env.reset(seed=3)
    pos = infos["agent_0"]["positions"]
    d = np.hypot(*(pos["agent_0"] - pos["adversary_0"]))
    assert 0.45 - 1e-12 <= d <= 0.75 + 1e-12
    assert np.any(obs["agent_0"][core.BLUE_RED_SLOTS] != 0)  # blue sees red
    assert np.all(obs["adversary_0"][4:6] == 0)  # red does not see blue
    assert env.cfg == core.EnvConfig(**options)
