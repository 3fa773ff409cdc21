"""The batched core against docs/spec.md §1.2–§1.8: physics, walls, trap, sight, observations,
rewards, start.

Expected values are computed in the tests from the formulas of docs/spec.md §1.2–§1.8 (never by
calling the core function under test), so a wrong constant or a wrong rule in ``core``
fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from soo_marl.envs import core

CFG = core.EnvConfig()
R = 0.125  # spec: sight radius
AT = 0.16  # spec: "at a landmark" distance
K = 0.001  # spec: wall softness
D_MIN = 0.2  # spec: wall contact distance: 0.15 + 0.05
FAR = np.array([-0.7, -0.7])  # a point far from everything used below


def make_state(
    red,
    blue,
    lm0=(0.6, 0.6),
    lm1=(-0.6, 0.6),
    goal_index: int = 0,
    vel_red=(0.0, 0.0),
    vel_blue=(0.0, 0.0),
    trapped: bool = False,
) -> core.State:
    """A batch of one world at a hand-chosen state."""
    return core.State(
        pos=np.array([[red, blue]], dtype=np.float64),
        vel=np.array([[vel_red, vel_blue]], dtype=np.float64),
        landmarks=np.array([[lm0, lm1]], dtype=np.float64),
        goal_index=np.array([goal_index], dtype=np.int64),
        trapped=np.array([trapped]),
        t=0,
    )


def softplus(z: float) -> float:
    """Numerically safe log(1 + e^z)."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def spec_wall_force_1d(x: float) -> float:
    """Spec: wall force along one axis from the two walls at -1 and +1."""
    total = 0.0
    for wall in (-1.0, 1.0):
        d = x - wall
        total += 100.0 * math.copysign(1.0, d) * K * softplus(-(abs(d) - D_MIN) / K)
    return total


def spec_step_1d(x: float, v: float, a: float) -> tuple[float, float]:
    """Spec: integration for one coordinate: returns (new x, new v)."""
    v_new = 0.75 * v + 0.1 * (5.0 * a + spec_wall_force_1d(x))
    return x + 0.1 * v_new, v_new


# --------------------------------------------------------------------------- physics


def test_one_step_in_open_space_matches_hand_values():
    s = make_state(red=(0.1, -0.2), blue=(-0.3, 0.4), vel_red=(0.3, -0.1), vel_blue=(0.0, 0.2))
    a = np.array([[[0.5, -1.0], [-0.2, 0.0]]])
    s2 = core.step(CFG, s, a)
    # red:  v = 0.75*(0.3, -0.1) + 0.1*5*(0.5, -1) = (0.475, -0.575); x += 0.1 v
    # blue: v = 0.75*(0, 0.2) + 0.1*5*(-0.2, 0) = (-0.1, 0.15)
    np.testing.assert_allclose(s2.vel[0], [[0.475, -0.575], [-0.1, 0.15]], atol=1e-6)
    np.testing.assert_allclose(s2.pos[0], [[0.1475, -0.2575], [-0.31, 0.415]], atol=1e-6)
    assert s2.t == 1
    # the input state is not modified
    np.testing.assert_array_equal(s.pos[0], [[0.1, -0.2], [-0.3, 0.4]])


def test_one_step_near_walls_includes_wall_force():
    # red near the right wall (|d| = 0.15 < 0.2) and in soft contact with the top one
    # (|d| = 0.19); blue deep in the left wall's contact zone (|d| = 0.05)
    red, blue = (0.85, 0.81), (-0.95, 0.0)
    vr, vb = (0.2, -0.05), (-0.1, 0.3)
    ar, ab = (1.0, 0.3), (-0.5, 0.0)
    fx = spec_wall_force_1d(0.85)
    assert fx == pytest.approx(-5.0, abs=1e-3)  # 100 * k * softplus(50) ≈ 5, pointing inward
    assert spec_wall_force_1d(0.81) == pytest.approx(-1.0000045, abs=1e-6)
    assert spec_wall_force_1d(-0.95) == pytest.approx(15.0, abs=1e-3)
    s = make_state(red=red, blue=blue, vel_red=vr, vel_blue=vb)
    s2 = core.step(CFG, s, np.array([[ar, ab]]))
    for agent, (p, v, a) in enumerate([(red, vr, ar), (blue, vb, ab)]):
        for axis in range(2):
            x_exp, v_exp = spec_step_1d(p[axis], v[axis], a[axis])
            assert s2.vel[0, agent, axis] == pytest.approx(v_exp, abs=1e-6)
            assert s2.pos[0, agent, axis] == pytest.approx(x_exp, abs=1e-6)
    # the wall force is not negligible here: without it red's x-velocity would be 0.65
    assert s2.vel[0, 0, 0] == pytest.approx(0.15 + 0.5 - 0.5, abs=1e-3)


@pytest.mark.parametrize("direction", [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1)])
def test_agent_pushed_into_a_wall_stays_inside(direction):
    cfg = core.EnvConfig()
    s = make_state(red=(0.0, 0.0), blue=(0.3, -0.3), lm0=(5.0, 5.0), lm1=(6.0, 6.0))
    a = np.broadcast_to(np.array(direction, dtype=np.float64), (1, 2, 2)).copy()
    reach = []
    for _ in range(100):
        s = core.step(cfg, s, a)
        assert np.all(np.abs(s.pos) < 1.0), s.pos
        reach.append(np.abs(s.pos[0][:, np.nonzero(direction)[0]]).max())
    # the agents do reach the wall's contact zone (equilibrium |x| ≈ 0.85)
    assert max(reach) > 0.8


# --------------------------------------------------------------------------- trap


def run_red_right(lm0, lm1, goal_index, steps=25, cfg=CFG):
    """Red starts at (-0.5, 0) and is pushed right (+1, 0); blue drifts up-left."""
    s = make_state(red=(-0.5, 0.0), blue=(0.6, -0.6), lm0=lm0, lm1=lm1, goal_index=goal_index)
    a = np.array([[[1.0, 0.0], [-0.2, 0.2]]])
    states = []
    for _ in range(steps):
        s = core.step(cfg, s, a)
        states.append(s)
    return states


def test_trap_sets_exactly_when_red_enters_fake_and_red_freezes():
    fake = np.array([0.3, 0.05])
    states = run_red_right(lm0=(0.5, 0.5), lm1=fake, goal_index=0)
    red = np.array([s.pos[0, 0] for s in states])
    blue = np.array([s.pos[0, 1] for s in states])
    trapped = np.array([bool(s.trapped[0]) for s in states])
    dist = np.linalg.norm(red - fake, axis=1)
    first = int(np.argmax(dist < AT))
    assert dist[first] < AT and first >= 3  # the trap is not at the first step
    assert np.all(dist[:first] >= AT)
    # the flag is 0 before, 1 exactly from the step red enters, and stays 1
    assert not trapped[:first].any()
    assert trapped[first:].all()
    # red never moves again (even though its action keeps pushing), velocity zero
    np.testing.assert_array_equal(red[first:], np.broadcast_to(red[first], red[first:].shape))
    for s in states[first + 1 :]:
        np.testing.assert_array_equal(s.vel[0, 0], [0.0, 0.0])
    # ... while blue keeps moving
    assert np.all(np.linalg.norm(np.diff(blue[first:], axis=0), axis=1) > 1e-3)


def test_reaching_the_goal_does_not_trap():
    goal = np.array([0.3, 0.05])
    states = run_red_right(lm0=goal, lm1=(0.5, -0.7), goal_index=0)
    red = np.array([s.pos[0, 0] for s in states])
    assert (np.linalg.norm(red - goal, axis=1) < AT).any()  # red did pass the goal
    assert not any(bool(s.trapped[0]) for s in states)
    assert np.ptp(red[:, 0]) > 0.5  # red kept moving


def test_goal_index_decides_which_landmark_traps():
    lm = (0.3, 0.05)
    # same landmark positions, only the goal index differs
    assert run_red_right(lm0=lm, lm1=(0.5, -0.7), goal_index=1)[-1].trapped[0]
    assert not run_red_right(lm0=lm, lm1=(0.5, -0.7), goal_index=0)[-1].trapped[0]


def test_blue_at_fake_does_not_trap():
    s = make_state(red=FAR, blue=(0.0, 0.0), lm0=(0.6, 0.6), lm1=(0.0, 0.05), goal_index=0)
    s = core.step(CFG, s, np.zeros((1, 2, 2)))
    assert not s.trapped[0]


# --------------------------------------------------------------------------- sight


@pytest.mark.parametrize("radius", [0.125, 0.5])
@pytest.mark.parametrize("eps, visible", [(-1e-7, True), (1e-7, False)])
def test_sight_radius_boundary_in_both_observations(radius, eps, visible):
    cfg = core.EnvConfig(sight_radius=radius)
    blue = np.array([0.1, -0.2])
    u = np.array([0.6, -0.8])  # unit vector
    red = blue + (radius + eps) * u
    s = make_state(red=red, blue=blue)
    obs_red, obs_blue = core.observe(cfg, s)
    if visible:
        np.testing.assert_allclose(obs_blue[0, 6:8], red - blue, atol=1e-6)
        np.testing.assert_allclose(obs_red[0, 4:6], blue - red, atol=1e-6)
        assert np.linalg.norm(obs_blue[0, 6:8]) > radius - 1e-5
    else:
        np.testing.assert_array_equal(obs_blue[0, 6:8], [0.0, 0.0])
        np.testing.assert_array_equal(obs_red[0, 4:6], [0.0, 0.0])
    # red's sight reward follows the same rule
    assert core.rewards(cfg, s)[0, 0] == (1.0 if visible else 0.0)


@pytest.mark.parametrize("radius", [0.125, 0.5])
def test_sight_at_exactly_r_counts_as_in_sight(radius):
    """Spec: "≤ R counts as in sight" (dyadic coordinates make the distance exactly R)."""
    cfg = core.EnvConfig(sight_radius=radius)
    s = make_state(red=(0.25, -0.5), blue=(0.25 - radius, -0.5))
    obs_red, obs_blue = core.observe(cfg, s)
    assert obs_blue[0, 6:8].tolist() == [radius, 0.0]
    assert obs_red[0, 4:6].tolist() == [-radius, 0.0]
    assert core.rewards(cfg, s)[0, 0] == 1.0


def test_at_exactly_0_16_is_not_at_a_landmark():
    """Spec: "at a landmark" is centre distance < 0.16, strictly (0.16 = 2 × 0.08 exactly)."""
    s = make_state(red=(0.16, 0.0), blue=(0.0, -0.16), lm0=(0.0, 0.0), lm1=(0.16, -0.16))
    assert core.rewards(CFG, s)[0].tolist() == [0.0, 0.0]
    # red exactly 0.16 from the fake landmark (0, 0) after a zero-action step: no trap
    s = make_state(red=(0.16, 0.0), blue=FAR, lm0=(0.5, 0.5), lm1=(0.0, 0.0))
    assert not core.step(CFG, s, np.zeros((1, 2, 2))).trapped[0]


def test_sight_radius_default_and_half():
    """At distance 0.3, red is invisible with R = 0.125 but visible with R = 0.5."""
    s = make_state(red=(0.3, 0.0), blue=(0.0, 0.0))
    assert not core.observe(core.EnvConfig(), s)[1][0, 6:8].any()
    np.testing.assert_allclose(
        core.observe(core.EnvConfig(sight_radius=0.5), s)[1][0, 6:8], [0.3, 0.0], atol=1e-7
    )


# --------------------------------------------------------------------------- observations


@pytest.mark.parametrize("goal_index", [0, 1])
@pytest.mark.parametrize("trapped", [False, True])
def test_observation_layouts(goal_index, trapped):
    red, blue = np.array([0.11, -0.23]), np.array([0.15, -0.17])  # distance 0.072 < R
    lm0, lm1 = np.array([0.71, 0.33]), np.array([-0.52, 0.64])
    s = make_state(red, blue, lm0, lm1, goal_index=goal_index, trapped=trapped)
    obs_red, obs_blue = core.observe(CFG, s)
    assert obs_red.dtype == np.float32 and obs_blue.dtype == np.float32
    assert obs_red.shape == (1, 6) and obs_blue.shape == (1, 10)
    goal = lm0 if goal_index == 0 else lm1
    flag = float(trapped)
    expected_blue = np.concatenate([goal - blue, lm0 - blue, lm1 - blue, red - blue, [flag, flag]])
    expected_red = np.concatenate([lm0 - red, lm1 - red, blue - red])
    np.testing.assert_allclose(obs_blue[0], expected_blue, atol=1e-6)
    np.testing.assert_allclose(obs_red[0], expected_red, atol=1e-6)


def test_observations_batched_rows_are_independent():
    states = [
        make_state((0.1, 0.1), (0.15, 0.1), goal_index=0, trapped=True),
        make_state((0.1, 0.1), (0.7, -0.7), goal_index=1),
    ]
    batch = core.State(
        pos=np.concatenate([s.pos for s in states]),
        vel=np.concatenate([s.vel for s in states]),
        landmarks=np.concatenate([s.landmarks for s in states]),
        goal_index=np.concatenate([s.goal_index for s in states]),
        trapped=np.concatenate([s.trapped for s in states]),
        t=0,
    )
    obs_red, obs_blue = core.observe(CFG, batch)
    for i, s in enumerate(states):
        r1, b1 = core.observe(CFG, s)
        np.testing.assert_array_equal(obs_red[i], r1[0])
        np.testing.assert_array_equal(obs_blue[i], b1[0])


# --------------------------------------------------------------------------- rewards

GOAL = (0.5, 0.5)
FAKE = (-0.5, -0.5)
NEAR_GOAL = (0.5 + 0.1, 0.5 - 0.1)  # 0.1414 < 0.16 from the goal
NEAR_GOAL2 = (0.5 - 0.1, 0.5 + 0.05)  # 0.1118 < 0.16, 0.2062 from NEAR_GOAL


@pytest.mark.parametrize(
    "red, blue, trapped, red_r, deceptive_blue_r, honest_blue_r",
    [
        (FAR, (0.0, 0.3), False, 0.0, 0.0, 0.0),  # nothing
        (NEAR_GOAL, (0.0, -0.3), False, 5.0, 0.0, 0.0),  # red at goal
        ((0.0, 0.0), (0.1, 0.0), False, 1.0, 0.0, 0.0),  # blue in sight
        (NEAR_GOAL, (0.6, 0.45), False, 6.0, 5.0, 5.0),  # both at goal, in sight
        (NEAR_GOAL, NEAR_GOAL2, False, 5.0, 5.0, 5.0),  # both at goal, out of sight
        ((0.0, 0.0), NEAR_GOAL, False, 0.0, 5.0, 5.0),  # blue at goal
        (FAKE, (0.0, 0.3), True, 0.0, 10.0, 0.0),  # trapped
        (FAKE, NEAR_GOAL, True, 0.0, 15.0, 5.0),  # trapped and blue at goal
        ((0.5 + 0.16 - 1e-6, 0.5), FAR, False, 5.0, 0.0, 0.0),  # just inside 0.16
        ((0.5 + 0.16 + 1e-6, 0.5), FAR, False, 0.0, 0.0, 0.0),  # just outside
        (FAR, (0.5, 0.5 - 0.16 + 1e-6), False, 0.0, 5.0, 5.0),
        (FAR, (0.5, 0.5 - 0.16 - 1e-6), False, 0.0, 0.0, 0.0),
    ],
)
def test_reward_table(red, blue, trapped, red_r, deceptive_blue_r, honest_blue_r):
    s = make_state(red, blue, lm0=FAKE, lm1=GOAL, goal_index=1, trapped=trapped)
    dec = core.rewards(core.EnvConfig(baseline="deceptive"), s)
    hon = core.rewards(core.EnvConfig(baseline="honest"), s)
    assert dec.shape == (1, 2)
    assert dec[0].tolist() == [red_r, deceptive_blue_r]
    assert hon[0].tolist() == [red_r, honest_blue_r]


@pytest.mark.parametrize("baseline, bonus", [("deceptive", 10.0), ("honest", 0.0)])
def test_trap_bonus_from_the_trap_step_on(baseline, bonus):
    cfg = core.EnvConfig(baseline=baseline)
    fake = np.array([0.3, 0.05])
    s = make_state(red=(-0.5, 0.0), blue=(0.2, -0.6), lm0=(0.5, -0.8), lm1=fake, goal_index=0)
    a = np.array([[[1.0, 0.0], [-0.3, 1.0]]])
    blue_rewards, flags, trap_slots = [], [], []
    for _ in range(30):
        s = core.step(cfg, s, a)
        blue_rewards.append(core.rewards(cfg, s)[0, 1])
        flags.append(bool(s.trapped[0]))
        trap_slots.append(core.observe(cfg, s)[1][0, 8:10].tolist())
    first = flags.index(True)
    assert first > 0
    # blue never reaches the goal on this path, so its reward is the trap bonus alone,
    # on every step while trapped, including the step the trap happens
    assert blue_rewards[:first] == [0.0] * first
    assert blue_rewards[first:] == [bonus] * (30 - first)
    # the trap is visible in blue's observation from the trap step itself
    assert trap_slots[:first] == [[0.0, 0.0]] * first
    assert trap_slots[first:] == [[1.0, 1.0]] * (30 - first)


# --------------------------------------------------------------------------- start


def test_start_distribution():
    b = 20000
    s = core.reset(CFG, np.random.default_rng(123), b)
    red, blue = s.pos[:, 0], s.pos[:, 1]
    lim = 0.825
    for arr in (red, blue, s.landmarks.reshape(-1, 2)):
        assert np.all(np.abs(arr) <= lim)
    # uniform: the extremes are reached, quartiles at about ±0.41
    for arr in (red, s.landmarks.reshape(-1, 2)):
        assert arr.min() < -0.82 and arr.max() > 0.82
        q = np.quantile(arr, [0.25, 0.5, 0.75], axis=0)
        np.testing.assert_allclose(q, [[-0.4125] * 2, [0.0] * 2, [0.4125] * 2], atol=0.03)
    # two landmarks independent: their coordinates uncorrelated
    c = np.corrcoef(s.landmarks[:, 0, 0], s.landmarks[:, 1, 0])[0, 1]
    assert abs(c) < 0.03
    # blue within the start radius 0.125 (clipping only shrinks the offset): red in sight
    dist = np.linalg.norm(blue - red, axis=1)
    assert dist.max() <= 0.125 + 1e-12
    assert core.in_sight(CFG, red, blue).all()
    # rho ~ U[0, 0.125]: a fifth of unclipped starts farther than 0.1
    unclipped = np.all(np.abs(red) < lim - 0.125, axis=1)
    assert unclipped.mean() > 0.5
    assert np.mean(dist[unclipped] > 0.1) == pytest.approx(0.2, abs=0.02)
    # angle uniform: mean direction about zero
    np.testing.assert_allclose((blue - red)[unclipped].mean(axis=0), [0.0, 0.0], atol=0.003)
    # goal index about 50/50, velocities zero, no trap, t = 0
    assert set(np.unique(s.goal_index)) == {0, 1}
    assert s.goal_index.mean() == pytest.approx(0.5, abs=0.015)
    assert not s.vel.any()
    assert not s.trapped.any()
    assert s.t == 0
    assert s.pos.shape == (b, 2, 2) and s.landmarks.shape == (b, 2, 2)


def test_start_observations_show_red_in_sight_with_default_radius():
    s = core.reset(CFG, np.random.default_rng(5), 500)
    obs_red, obs_blue = core.observe(CFG, s)
    np.testing.assert_allclose(obs_blue[:, 6:8], s.pos[:, 0] - s.pos[:, 1], atol=1e-6)
    np.testing.assert_allclose(obs_red[:, 4:6], s.pos[:, 1] - s.pos[:, 0], atol=1e-6)
    assert not obs_blue[:, 8:10].any()


def test_reset_from_seed_list_equals_single_seed_resets():
    seeds = [3, 17, 3, 99]
    batch = core.reset(CFG, seeds)
    for i, seed in enumerate(seeds):
        one = core.reset(CFG, seed)
        np.testing.assert_array_equal(batch.pos[i], one.pos[0])
        np.testing.assert_array_equal(batch.landmarks[i], one.landmarks[0])
        assert batch.goal_index[i] == one.goal_index[0]
    np.testing.assert_array_equal(batch.pos[0], batch.pos[2])
    assert not np.array_equal(batch.pos[0], batch.pos[1])


# --------------------------------------------------------------------------- config/input


def test_config_validation_lists_allowed_values():
    with pytest.raises(ValueError, match="deceptive.*honest"):
        core.EnvConfig(baseline="sneaky")
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_cycles must be a positive integer"):
            core.EnvConfig(max_cycles=bad)
    with pytest.raises(ValueError, match="sight_radius"):
        core.EnvConfig(sight_radius=0.0)


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (np.zeros((64, 3)), "shape"),
        (np.zeros(2), "shape"),
        (np.full((64, 2), np.nan), "NaN or inf"),
        (np.full((64, 2), np.inf), "NaN or inf"),
    ],
)
def test_batched_env_rejects_bad_actions(bad, pattern):
    env = core.BatchedEnv(CFG, 64)
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=f"adversary_0.*{pattern}|{pattern}.*adversary_0"):
        env.step(bad, np.zeros((64, 2)))
    with pytest.raises(ValueError, match=f"agent_0.*{pattern}|{pattern}.*agent_0"):
        env.step(np.zeros((64, 2)), bad)


def test_batched_env_clips_actions_and_truncates():
    a = core.BatchedEnv(core.EnvConfig(max_cycles=3), 8)
    b = core.BatchedEnv(core.EnvConfig(max_cycles=3), 8)
    a.reset(7)
    b.reset(7)
    act = np.random.default_rng(1).uniform(-1, 1, (8, 2))
    act[:, 0] = 1.0
    big = act.copy()
    big[:, 0] = 5.0
    for t in range(3):
        (ra, ba), rew_a, trunc_a = a.step(big, -big)
        (rb, bb), rew_b, trunc_b = b.step(act, -act)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(rew_a, rew_b)
        assert trunc_a == trunc_b == (t == 2)


# --------------------------------------------------------------------------- closed-loop variants


def test_variants_are_off_by_default_and_take_extra_draws_only_when_on():
    cfg = core.EnvConfig()
    assert core.reset_draws(cfg) == core.RESET_DRAWS == 9
    state = core.reset(cfg, 3, 4)
    assert state.red_gain is None and state.red_delay is None
    assert core.reset_draws(cfg.with_(red_speed_min=0.5)) == 10
    assert core.reset_draws(cfg.with_(red_delay_max=5)) == 10
    assert core.reset_draws(cfg.with_(red_speed_min=0.5, red_delay_max=5)) == 11
    # the first nine columns keep their meaning: same landmarks and positions
    u = np.random.default_rng(0).random((6, 11))
    both = core.reset_from_uniforms(cfg.with_(red_speed_min=0.5, red_delay_max=5), u)
    plain = core.reset_from_uniforms(cfg, u[:, :9])
    assert np.array_equal(both.pos, plain.pos) and np.array_equal(both.landmarks, plain.landmarks)
    with pytest.raises(ValueError, match="takes 9"):
        core.reset_from_uniforms(cfg, u)


def test_red_speed_factor_scales_reds_push_only():
    cfg = core.EnvConfig(red_speed_min=0.4, red_speed_max=0.4)
    state = core.reset_from_uniforms(cfg, np.full((1, 10), 0.5))
    assert state.red_gain.tolist() == [0.4]
    state.pos[:] = 0.0  # open space: no wall force
    nxt = core.step(cfg, state, np.array([[[1.0, 0.0], [1.0, 0.0]]]))
    # v = 0.1 · 5 · a, times red's factor; blue unchanged
    assert nxt.vel[0, core.RED].tolist() == pytest.approx([0.5 * 0.4, 0.0])
    assert nxt.vel[0, core.BLUE].tolist() == pytest.approx([0.5, 0.0])
    ranged = core.reset(cfg.with_(red_speed_min=0.3, red_speed_max=1.0), 7, 2000)
    assert 0.3 <= ranged.red_gain.min() < 0.35 and 0.95 < ranged.red_gain.max() <= 1.0
    obs_red, obs_blue = core.observe(cfg, state)  # nobody observes the factor
    assert obs_red.shape == (1, 6) and obs_blue.shape == (1, 10)


def test_red_start_delay_holds_red_for_k_steps():
    cfg = core.EnvConfig(red_delay_max=4)
    u = np.random.default_rng(1).random((200, 10))
    state = core.reset_from_uniforms(cfg, u)
    assert set(state.red_delay.tolist()) == {0, 1, 2, 3, 4}
    start = state.pos[:, core.RED].copy()
    push = np.ones((200, 2, 2))
    moved_at = np.full(200, -1)
    for t in range(6):
        state = core.step(cfg, state, push)
        moved = np.any(state.pos[:, core.RED] != start, axis=1) & (moved_at < 0)
        moved_at[moved] = t
    free = ~state.trapped  # a red that started on the fake landmark is frozen anyway
    assert free.sum() > 150
    assert np.array_equal(moved_at[free], state.red_delay[free])  # first moves on step k


@pytest.mark.parametrize("batch", [1, 64, 65])
@pytest.mark.parametrize(
    "options",
    [
        {},
        dict(sight_radius=0.5, trap_deadline=20, red_leash=5, guide_reward=1.0),
        dict(blue_sight_radius=0.4, red_sight_radius=0.3, red_speed_min=0.5, red_delay_max=3),
    ],
)
def test_step_outputs_is_step_then_outputs_bit_for_bit(batch, options):
    """The one-pass step of up to FUSED_MAX_BATCH worlds (and the two-call path above it)
    gives the state and outputs of core.step followed by core.outputs, to the last bit."""
    cfg = core.EnvConfig(**options)
    rng = np.random.default_rng(batch)
    state = core.reset(cfg, np.random.default_rng(7), batch)
    for _ in range(cfg.max_cycles):
        actions = rng.uniform(-1.5, 1.5, (batch, 2, core.ACTION_DIM)).clip(-1, 1)
        fused, out = core.step_outputs(cfg, state, actions)
        state = core.step(cfg, state, actions)
        ref = core.outputs(cfg, state)
        for name in ("pos", "vel", "trapped", "trap_step", "unseen"):
            a, b = getattr(fused, name), getattr(state, name)
            assert (a is None and b is None) or a.tobytes() == b.tobytes(), name
        assert fused.t == state.t
        for name, a in out._asdict().items():
            b = getattr(ref, name)
            assert (a is None and b is None) or (
                a.dtype == b.dtype and a.tobytes() == b.tobytes()
            ), name
    assert state.trapped.any() or batch == 1  # the trap path was exercised
