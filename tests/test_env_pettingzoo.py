"""The PettingZoo view of the environment: API conformance, truncation, determinism,
equivalence with the batched core, bad input, rendering and the ``render`` command."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from soo_marl.envs import core
from soo_marl.envs.physical_deception_v0 import env as aec_env
from soo_marl.envs.physical_deception_v0 import parallel_env

RED, BLUE = "adversary_0", "agent_0"


def random_actions(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform actions in [-1, 1] for both agents."""
    return {RED: rng.uniform(-1, 1, 2), BLUE: rng.uniform(-1, 1, 2)}


# --------------------------------------------------------------------------- API


def test_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(), num_cycles=120)


def test_aec_api_test():
    from pettingzoo.test import api_test

    # api_test warns (UserWarning) that the two agents' observations differ in shape and
    # that the observation bounds are infinite: both are by design (docs/spec.md §1.6, §1.9,
    # as in MPE).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        api_test(aec_env(), num_cycles=60)


def test_pettingzoo_make_after_import():
    import pettingzoo

    import soo_marl.envs  # noqa: F401  (registers the env)

    e = pettingzoo.make("parallel", "soo_marl/physical_deception_v0")
    obs, infos = e.reset(seed=0)
    assert set(obs) == {RED, BLUE}
    assert obs[RED].shape == (6,) and obs[BLUE].shape == (10,)
    assert e.possible_agents == [RED, BLUE]


def test_spaces():
    e = parallel_env()
    for a in (RED, BLUE):
        space = e.action_space(a)
        assert space.shape == (2,) and space.dtype == np.float32
        assert space.low.tolist() == [-1, -1] and space.high.tolist() == [1, 1]
    assert e.observation_space(RED).shape == (6,)
    assert e.observation_space(BLUE).shape == (10,)
    obs, _ = e.reset(seed=3)
    assert obs[RED].dtype == np.float32 and obs[BLUE].dtype == np.float32


# --------------------------------------------------------------------------- episode length


@pytest.mark.parametrize("max_cycles", [50, 7])
def test_truncation_exactly_at_max_cycles(max_cycles):
    e = parallel_env(max_cycles=max_cycles) if max_cycles != 50 else parallel_env()
    rng = np.random.default_rng(0)
    e.reset(seed=1)
    for t in range(1, max_cycles + 1):
        assert e.agents == [RED, BLUE]
        _, rewards, terms, truncs, infos = e.step(random_actions(rng))
        assert set(rewards) == set(terms) == set(truncs) == set(infos) == {RED, BLUE}
        assert terms == {RED: False, BLUE: False}
        assert truncs == {RED: t == max_cycles, BLUE: t == max_cycles}
    assert e.agents == []
    with pytest.raises(RuntimeError):
        e.step(random_actions(rng))
    # a new episode starts with both agents again
    e.reset(seed=2)
    assert e.agents == [RED, BLUE]


# --------------------------------------------------------------------------- determinism


def play(e, seed: int, actions: list[dict[str, np.ndarray]]):
    """Reset with ``seed`` and play ``actions``; returns every step's outputs."""
    out = [e.reset(seed=seed)]
    for a in actions:
        out.append(e.step(a))
    return out


def assert_same_outputs(x, y) -> None:
    """Recursively equal (arrays exactly) dicts/tuples/lists/arrays/scalars."""
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        for k in x:
            assert_same_outputs(x[k], y[k])
    elif isinstance(x, (tuple, list)):
        assert len(x) == len(y)
        for a, b in zip(x, y, strict=True):
            assert_same_outputs(a, b)
    elif isinstance(x, np.ndarray):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    else:
        assert x == y


def test_same_seed_same_episode_for_50_steps():
    rng = np.random.default_rng(11)
    actions = [random_actions(rng) for _ in range(50)]
    a = play(parallel_env(), 42, actions)
    b = play(parallel_env(), 42, actions)
    assert len(a) == 51
    assert_same_outputs(a, b)
    # resetting the same env again with the seed replays it too
    e = parallel_env()
    play(e, 7, actions)
    assert_same_outputs(play(e, 42, actions), a)
    # a different seed gives a different episode (start and later steps)
    c = play(parallel_env(), 43, actions)
    assert not np.array_equal(a[0][0][BLUE], c[0][0][BLUE])
    for t in range(1, 51):
        assert not np.array_equal(a[t][0][RED], c[t][0][RED])


def test_unseeded_reset_continues_the_generator():
    e = parallel_env()
    first = e.reset(seed=5)[0][BLUE].copy()
    second = e.reset()[0][BLUE]
    assert not np.array_equal(first, second)


# --------------------------------------------------------------------------- equivalence


def steer_actions(state: core.State, rng: np.random.Generator) -> np.ndarray:
    """(B, 2, 2) actions: red heads for the fake landmark (noisy), blue acts at random."""
    b = state.batch_size
    red = np.clip(4.0 * (state.fake - state.pos[:, 0]) + rng.normal(0, 0.3, (b, 2)), -1, 1)
    # half of the reds wander at random instead, so both trap outcomes occur
    red[::2] = rng.uniform(-1, 1, (len(red[::2]), 2))
    blue = rng.uniform(-1, 1, (b, 2))
    return np.stack([red, blue], axis=1)


def test_batched_core_equals_64_pettingzoo_envs():
    b = 64
    seeds = [1000 + 7 * i for i in range(b)]
    cfg = core.EnvConfig()
    batched = core.BatchedEnv(cfg, b)
    obs_red, obs_blue = batched.reset(seeds)
    envs = [parallel_env() for _ in range(b)]
    starts = [e.reset(seed=s) for e, s in zip(envs, seeds, strict=True)]
    for i, (obs, infos) in enumerate(starts):
        np.testing.assert_array_equal(obs[RED], obs_red[i])
        np.testing.assert_array_equal(obs[BLUE], obs_blue[i])
        np.testing.assert_array_equal(infos[RED]["positions"][RED], batched.state.pos[i, 0])
    rng = np.random.default_rng(0)
    trapped_at = np.full(b, -1)
    for t in range(1, 51):
        acts = steer_actions(batched.state, rng)
        (obs_red, obs_blue), rew, truncated = batched.step(acts[:, 0], acts[:, 1])
        s = batched.state
        assert truncated == (t == 50)
        newly = s.trapped & (trapped_at < 0)
        trapped_at[newly] = t
        for i, e in enumerate(envs):
            obs, rewards, terms, truncs, infos = e.step({RED: acts[i, 0], BLUE: acts[i, 1]})
            np.testing.assert_array_equal(obs[RED], obs_red[i])
            np.testing.assert_array_equal(obs[BLUE], obs_blue[i])
            assert [rewards[RED], rewards[BLUE]] == rew[i].tolist()
            assert truncs[RED] == truncated
            info = infos[BLUE]
            np.testing.assert_array_equal(info["positions"][RED], s.pos[i, 0])
            np.testing.assert_array_equal(info["positions"][BLUE], s.pos[i, 1])
            np.testing.assert_array_equal(info["landmarks"], s.landmarks[i])
            assert info["goal_index"] == s.goal_index[i]
            assert info["trapped"] == bool(s.trapped[i])
    # the trap path was exercised, and not everywhere
    assert 10 <= (trapped_at > 0).sum() < b
    assert all(not e.agents for e in envs)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("agent", [RED, BLUE])
@pytest.mark.parametrize(
    "bad, pattern",
    [
        (np.zeros(3), "shape"),
        (np.zeros((1, 2)), "shape"),
        (np.array([np.nan, 0.0]), "NaN or inf"),
        (np.array([0.0, np.inf]), "NaN or inf"),
        (np.array([-np.inf, 0.0]), "NaN or inf"),
    ],
)
def test_bad_action_names_the_agent(agent, bad, pattern):
    e = parallel_env()
    e.reset(seed=0)
    actions = {RED: np.zeros(2), BLUE: np.zeros(2)}
    actions[agent] = bad
    with pytest.raises(ValueError, match=pattern) as info:
        e.step(actions)
    assert agent in str(info.value)
    other = BLUE if agent == RED else RED
    assert other not in str(info.value)


def test_missing_action_raises():
    e = parallel_env()
    e.reset(seed=0)
    with pytest.raises(ValueError, match=BLUE):
        e.step({RED: np.zeros(2)})


def test_out_of_range_actions_are_clipped():
    a, b = parallel_env(), parallel_env()
    a.reset(seed=9)
    b.reset(seed=9)
    for _ in range(5):
        out_a = a.step({RED: np.array([5.0, -0.3]), BLUE: np.array([-7.0, 100.0])})
        out_b = b.step({RED: np.array([1.0, -0.3]), BLUE: np.array([-1.0, 1.0])})
        assert_same_outputs(out_a, out_b)


def test_bad_config_lists_allowed_values():
    with pytest.raises(ValueError, match="deceptive.*honest"):
        parallel_env(baseline="sneaky")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_cycles must be a positive integer"):
            parallel_env(max_cycles=bad)
    with pytest.raises(ValueError, match="sight_radiuss") as info:
        parallel_env(sight_radiuss=0.5)
    assert "sight_radius" in str(info.value).replace("sight_radiuss", "")
    with pytest.raises(ValueError, match="rgb_array"):
        parallel_env(render_mode="human")


def test_config_keywords_are_used():
    e = parallel_env(baseline="honest", sight_radius=0.5)
    assert e.cfg.baseline == "honest" and e.cfg.sight_radius == 0.5


def test_env_step_reward_and_trap_on_the_trap_step():
    """Through the PettingZoo API: blue gets +10 and sees the trap on the trap step."""
    for baseline, bonus in (("deceptive", 10.0), ("honest", 0.0)):
        e = parallel_env(baseline=baseline)
        e.reset(seed=0)
        e.state_ = core.State(
            pos=np.array([[[0.0, 0.0], [-0.6, -0.6]]]),
            vel=np.zeros((1, 2, 2)),
            landmarks=np.array([[[0.6, 0.6], [0.3, 0.0]]]),
            goal_index=np.array([0]),
            trapped=np.array([False]),
            t=0,
        )
        rewards_blue, flags = [], []
        for _ in range(8):
            obs, rewards, _, _, infos = e.step({RED: np.array([1.0, 0.0]), BLUE: np.zeros(2)})
            rewards_blue.append(rewards[BLUE])
            flags.append(infos[RED]["trapped"])
            assert obs[BLUE][8] == obs[BLUE][9] == float(infos[RED]["trapped"])
        first = flags.index(True)
        assert 0 < first < 7 and all(flags[first:])
        assert rewards_blue == [0.0] * first + [bonus] * (8 - first)


# --------------------------------------------------------------------------- rendering

SIZE = 400
SCALE = SIZE / 2.2  # the image spans [-1.1, 1.1]² (arena plus wall width)


def to_pixel(p) -> tuple[float, float]:
    """(column, row) of world point p."""
    return (p[0] + 1.1) * SCALE, (1.1 - p[1]) * SCALE


def colour_centroid(img: np.ndarray, colour, skip_rows: int = 20):
    """Mean (column, row) and count of pixels of exactly ``colour`` in the arena (the
    square above the info panel), below its top ``skip_rows`` rows."""
    mask = np.all(img == np.array(colour, dtype=np.uint8), axis=-1)
    mask[:skip_rows] = False
    mask[SIZE:] = False
    rows, cols = np.nonzero(mask)
    return (cols.mean(), rows.mean()), mask.sum()


def test_rgb_frame_of_a_known_state():
    from soo_marl.envs.render import COLOURS, panel_height

    e = parallel_env(render_mode="rgb_array")
    e.reset(seed=0)
    red, blue = (-0.5, -0.5), (0.5, -0.4)
    goal, fake = (-0.4, 0.5), (0.55, 0.45)
    e.state_ = core.State(
        pos=np.array([[red, blue]]),
        vel=np.zeros((1, 2, 2)),
        landmarks=np.array([[fake, goal]]),
        goal_index=np.array([1]),
        trapped=np.array([False]),
        t=0,
    )
    img = e.render()
    assert img.shape == (400 + panel_height(400), 400, 3) and img.dtype == np.uint8
    for name, centre, radius in (
        ("goal", goal, 0.08),
        ("fake", fake, 0.08),
        ("red", red, 0.15),
        ("blue", blue, 0.15),
    ):
        (cx, cy), n = colour_centroid(img, COLOURS[name])
        ex, ey = to_pixel(centre)
        assert abs(cx - ex) < 1.5 and abs(cy - ey) < 1.5, (name, cx, cy, ex, ey)
        area = np.pi * (radius * SCALE) ** 2
        assert 0.85 * area < n < 1.15 * area, (name, n, area)
        assert tuple(img[int(round(ey)), int(round(ex))]) == COLOURS[name]
    # the centre of the arena is background
    assert tuple(img[200, 200]) == COLOURS["background"]
    # rendering off: None
    e2 = parallel_env()
    e2.reset(seed=0)
    assert e2.render() is None


def test_render_command_writes_gif(tmp_path):
    from soo_marl.cli import main
    from soo_marl.envs.render import panel_height

    out = tmp_path / "x.gif"
    result = CliRunner().invoke(
        main, ["render", "--policy", "random", "--episodes", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 2 * 51
        assert gif.size == (400, 400 + panel_height(400))


def test_env_is_garbage_collected():
    import gc
    import weakref

    e = parallel_env()
    e.action_space("agent_0")
    ref = weakref.ref(e)
    del e
    gc.collect()
    assert ref() is None


def test_render_before_reset_is_a_clear_error():
    with pytest.raises(RuntimeError, match="reset"):
        parallel_env(render_mode="rgb_array").render()


def test_non_numeric_action_names_the_agent():
    e = parallel_env()
    e.reset(seed=0)
    with pytest.raises(ValueError, match="adversary_0"):
        e.step({"adversary_0": ["a", "b"], "agent_0": np.zeros(2)})


def test_infos_are_independent_per_agent():
    _, infos = parallel_env().reset(seed=0)
    infos["agent_0"]["positions"]["agent_0"] = None
    assert infos["adversary_0"]["positions"]["agent_0"] is not None


@pytest.mark.parametrize("kw", [{"max_cycles": True}, {"contact_margin": 0.0}, {"damping": 1.5}])
def test_config_rejects_nonsense(kw):
    from soo_marl.envs import core

    with pytest.raises(ValueError):
        core.EnvConfig(**kw)
