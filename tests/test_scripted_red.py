"""The scripted red with a hidden type (docs/spec.md §1.13): its rule, the type's draw,
step's override, the defaults left bit-identical, the PettingZoo API with it on, and the
design's point: a blind plan (a scripted ``to_fake`` blue) traps followers only."""

import numpy as np
import pytest

from soo_marl import rollout
from soo_marl.envs import core, physical_deception_v0, scripted

SCRIPTED = core.EnvConfig(red_policy="scripted", sight_radius=0.5)


def _state(red, blue, lm0, lm1, contrarian, goal_index=0):
    """One constructed world (batch of one)."""
    return core.State(
        pos=np.array([[red, blue]], dtype=float),
        vel=np.zeros((1, 2, 2)),
        landmarks=np.array([[lm0, lm1]], dtype=float),
        goal_index=np.array([goal_index]),
        trapped=np.zeros(1, dtype=bool),
        t=0,
        red_contrarian=np.array([contrarian]),
    )


def test_one_copy_of_the_scripted_policies():
    assert scripted.scripted_red_action is core.scripted_red_action
    assert rollout.scripted_red_action is core.scripted_red_action
    assert rollout.scripted_blue_action is scripted.scripted_blue_action
    assert rollout.SCRIPTED_BLUES is scripted.SCRIPTED_BLUES


def test_follower_heads_for_blue_in_sight_and_stays_otherwise():
    s = _state([0.0, 0.0], [0.3, 0.4], [0.5, 0.0], [-0.5, 0.0], False)
    np.testing.assert_allclose(scripted.scripted_red_action(SCRIPTED, s), [[0.6, 0.8]], atol=1e-6)
    far = _state([0.0, 0.0], [0.6, 0.4], [0.5, 0.0], [-0.5, 0.0], False)  # 0.72 > 0.5
    assert np.array_equal(scripted.scripted_red_action(SCRIPTED, far), [[0.0, 0.0]])


def test_contrarian_heads_for_the_landmark_farther_from_blue():
    # blue (0.3, 0) is nearer landmark 0 (0.5, 0): the contrarian heads for landmark 1
    s = _state([0.0, 0.0], [0.3, 0.0], [0.5, 0.0], [0.0, -0.5], True)
    np.testing.assert_allclose(scripted.scripted_red_action(SCRIPTED, s), [[0.0, -1.0]], atol=1e-6)
    s = _state([0.0, 0.0], [0.0, -0.3], [0.5, 0.0], [0.0, -0.5], True)
    np.testing.assert_allclose(scripted.scripted_red_action(SCRIPTED, s), [[1.0, 0.0]], atol=1e-6)
    out = _state([0.0, 0.0], [0.0, -0.6], [0.5, 0.0], [0.0, -0.5], True)
    assert np.array_equal(scripted.scripted_red_action(SCRIPTED, out), [[0.0, 0.0]])
    # full force
    s = _state([0.1, 0.2], [0.2, -0.1], [0.7, 0.3], [-0.6, 0.5], True)
    assert np.linalg.norm(scripted.scripted_red_action(SCRIPTED, s)) == pytest.approx(1.0)


def test_the_hidden_type_is_drawn_with_its_probability_and_observed_by_no_one():
    for p in (0.0, 0.3, 1.0):
        cfg = SCRIPTED.with_(red_contrarian_prob=p)
        assert core.reset_draws(cfg) == core.RESET_DRAWS + 1
        state = core.reset(cfg, np.random.default_rng(0), 20_000)
        assert state.red_contrarian.dtype == bool
        assert abs(state.red_contrarian.mean() - p) < 0.015
    a = core.reset(SCRIPTED.with_(red_contrarian_prob=1.0), np.random.default_rng(1), 50)
    b = core.reset(SCRIPTED, np.random.default_rng(1), 50)
    for x, y in zip(core.observe(SCRIPTED, a), core.observe(SCRIPTED, b), strict=True):
        assert np.array_equal(x, y)


def test_a_step_ignores_reds_given_action():
    cfg = SCRIPTED.with_(red_contrarian_prob=0.5)
    state = core.reset(cfg, np.random.default_rng(2), 64)
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (64, 2, 2))
    b = a.copy()
    b[:, core.RED] = rng.uniform(-1, 1, (64, 2))
    given = a.copy()
    sa, sb = core.step(cfg, state, a), core.step(cfg, state, b)
    assert np.array_equal(a, given)  # the caller's actions are not changed
    assert np.array_equal(sa.pos, sb.pos) and np.array_equal(sa.vel, sb.vel)
    assert np.array_equal(sa.red_contrarian, state.red_contrarian)
    # red moved by the rule: its first velocity is the rule's action × sensitivity × dt
    expected = cfg.sensitivity * core.scripted_red_action(cfg, state) * cfg.dt
    np.testing.assert_allclose(
        sa.vel[:, core.RED] - core.wall_force(cfg, state.pos)[:, 0] * cfg.dt, expected, atol=1e-12
    )


def test_validation():
    with pytest.raises(ValueError, match="unknown red_policy"):
        core.EnvConfig(red_policy="greedy")
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="red_contrarian_prob must be in"):
            core.EnvConfig(red_policy="scripted", red_contrarian_prob=p)
    with pytest.raises(ValueError, match="needs red_policy scripted"):
        core.EnvConfig(red_contrarian_prob=0.5)


def test_defaults_are_bit_identical():
    cfg = core.EnvConfig()
    assert cfg.red_policy == "learned" and cfg.red_contrarian_prob == 0.0
    assert not cfg.scripted_red
    assert core.reset_draws(cfg) == core.RESET_DRAWS
    u = np.random.default_rng(4).random((32, core.RESET_DRAWS))
    state = core.reset_from_uniforms(cfg, u)
    assert state.red_contrarian is None
    # a rollout with random actions, against the same rollout written out by hand from
    # the pre-§1.13 step (learned red: the given action)
    acts = np.random.default_rng(5).uniform(-1, 1, (20, 32, 2, 2))
    s = state
    pos, vel = state.pos.copy(), state.vel.copy()
    trapped = state.trapped.copy()
    for a in acts:
        s = core.step(cfg, s, a)
        force = cfg.sensitivity * a + core.wall_force(cfg, pos)
        vel = vel * (1.0 - cfg.damping) + force * cfg.dt
        vel[trapped, core.RED] = 0.0
        pos = pos + vel * cfg.dt
        trapped = trapped | core.at_landmark(cfg, pos[:, core.RED], state.fake)
        assert np.array_equal(s.pos, pos) and np.array_equal(s.trapped, trapped)


def test_pettingzoo_api_with_the_scripted_red():
    from pettingzoo.test import parallel_api_test

    env = physical_deception_v0.parallel_env(
        red_policy="scripted", red_contrarian_prob=0.5, sight_radius=0.5
    )
    parallel_api_test(env, num_cycles=60)
    env.reset(seed=3)
    _, rewards, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert set(rewards) == set(core.AGENT_IDS)


def _blind_plan_traps(contrarian: bool) -> bool:
    """A to_fake blue from a constructed start: red at the origin, blue 0.1 from it toward
    the fake at (0.6, 0), the goal at (-0.6, 0); sight radius 0.5."""
    cfg = SCRIPTED.with_(red_contrarian_prob=1.0 if contrarian else 0.0)
    state = _state([0.0, 0.0], [0.1, 0.0], [-0.6, 0.0], [0.6, 0.0], contrarian, goal_index=0)
    for _ in range(cfg.max_cycles):
        blue = scripted.scripted_blue_action(cfg, state, "to_fake")
        actions = np.stack([np.zeros((1, 2)), blue], axis=1)
        state = core.step(cfg, state, actions)
    return bool(state.trapped[0]), bool(core.at_goal(cfg, state)[0, core.RED])


def test_a_blind_plan_traps_followers_but_not_contrarians():
    trapped, _ = _blind_plan_traps(contrarian=False)
    assert trapped
    trapped, red_at_goal = _blind_plan_traps(contrarian=True)
    assert not trapped and red_at_goal
