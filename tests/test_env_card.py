"""The env card (module docstring of envs/physical_deception_v0.py) against the env: every
fact the card states in its summary table, observation tables, rewards and arguments is
checked against what the environment does."""

from __future__ import annotations

import dataclasses
import inspect
import re

import numpy as np
import pytest

from soo_marl.envs import core, physical_deception_v0

CARD = physical_deception_v0.__doc__ or ""


def card_section(title: str) -> str:
    """The text of one section of the card (from its underlined title to the next)."""
    m = re.search(rf"^{re.escape(title)}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", CARD, re.M | re.S)
    assert m, f"the env card has no section {title!r}"
    return m[1]


def summary() -> dict[str, str]:
    """The card's summary table: row name → value."""
    rows = re.findall(r"^\| ([A-Z][^|]*?) +\| (.*?) +\|$", CARD, re.M)
    return dict(rows)


def test_summary_table_matches_the_env() -> None:
    table = summary()
    env = physical_deception_v0.parallel_env()
    assert table["Agents"] == f"``agents = {env.possible_agents}``"
    assert table["Number of agents"] == str(len(env.possible_agents))
    for agent in env.possible_agents:
        action = env.action_space(agent)
        assert table["Action shape"] == str(action.shape)
        assert table["Action values"] == (
            f"``Box({action.low[0]}, {action.high[0]}, {action.shape}, {action.dtype})``"
        )
        obs = env.observation_space(agent)
        assert f"{obs.shape} for ``{agent}``" in table["Observation shape"]
        assert np.all(obs.low == -np.inf) and np.all(obs.high == np.inf)
        assert table["Observation values"] == f"``Box(-inf, inf, {obs.dtype})``"
    default_cycles = core.EnvConfig().max_cycles
    assert table["Episode length"].startswith(f"{default_cycles} steps (``max_cycles``)")
    assert f"({env.metadata['render_fps']} frames per second)" in table["Render modes"]
    assert physical_deception_v0.RENDER_MODES == (None, "rgb_array")
    assert physical_deception_v0.__name__.rsplit(".", 1)[1] in table["Import"]
    assert env.metadata["name"] in table["Registered id"]


@pytest.mark.parametrize(
    ("agent", "dim"), [("adversary_0", core.OBS_DIM_RED), ("agent_0", core.OBS_DIM_BLUE)]
)
def test_observation_tables_cover_every_slot(agent: str, dim: int) -> None:
    text = card_section("Observations")
    block = text.split(f"``{agent}``", 1)[1].split("\n\n", 2)[1]
    slots = []
    for row in re.findall(r"^\| ([\d, ]+?) +\|", block, re.M):
        slots += [int(s) for s in row.split(",")]
    assert slots == list(range(dim))
    assert f"{dim} values" in text.split(f"``{agent}``", 1)[1].splitlines()[0]


def test_observation_slots_say_what_the_env_observes() -> None:
    """One state with red in sight and trapped, read slot by slot as the card states."""
    env = physical_deception_v0.parallel_env()
    env.reset(seed=3)
    s = env.state_
    lm = s.landmarks[0]
    goal = lm[s.goal_index[0]]
    env.state_ = core.State(
        pos=np.array([[[0.05, 0.0], [0.0, 0.0]]]) + lm[1 - s.goal_index[0]],
        vel=np.zeros((1, 2, 2)),
        landmarks=s.landmarks,
        goal_index=s.goal_index,
        trapped=np.array([True]),
        t=1,
    )
    obs, _, _ = env._outputs()
    p_r, p_b = env.state_.pos[0]
    red, blue = obs["adversary_0"], obs["agent_0"]
    np.testing.assert_allclose(
        red, np.r_[lm[0] - p_r, lm[1] - p_r, p_b - p_r], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        blue,
        np.r_[goal - p_b, lm[0] - p_b, lm[1] - p_b, p_r - p_b, 1.0, 1.0],
        rtol=1e-6,
        atol=1e-7,
    )


def test_rewards_table_matches_the_config() -> None:
    cfg = core.EnvConfig()
    text = " ".join(card_section("Rewards").split())
    g, sight, trap = cfg.goal_reward, cfg.red_sight_reward, cfg.trap_reward
    assert f"{g:g}·[red at the goal] + {sight:g}·[in sight]" in text
    assert f"{g:g}·[blue at the goal] + {trap:g}·[red trapped]" in text
    assert f"below {cfg.at_landmark_distance:g} (twice the landmark radius)" in text
    red_values = sorted({a * g + b * sight for a in (0, 1) for b in (0, 1)})
    deceptive = sorted({a * g + b * trap for a in (0, 1) for b in (0, 1)})
    assert ", ".join(f"{v:g}" for v in red_values) in text
    assert ", ".join(f"{v:g}" for v in deceptive) in text


def test_arguments_name_every_field_with_its_default() -> None:
    text = card_section("Arguments")
    stated = dict(re.findall(r"``(\w+)=([^`]+)``", text))
    defaults = {f.name: f.default for f in dataclasses.fields(core.EnvConfig)}
    assert set(defaults) <= set(stated), set(defaults) - set(stated)
    for name, value in defaults.items():
        assert stated[name] == (f'"{value}"' if isinstance(value, str) else repr(value)), name
    signature = inspect.signature(physical_deception_v0.parallel_env).parameters
    for name in ("baseline", "max_cycles", "render_mode"):
        value = signature[name].default
        assert stated[name] == (f'"{value}"' if isinstance(value, str) else repr(value)), name


def test_episode_end_and_render_shape_as_stated() -> None:
    text = card_section("Episode end")
    env = physical_deception_v0.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert f"returns a {image.shape} {image.dtype} image" in " ".join(text.split())
    steps = 0
    while env.agents:
        _, _, terminations, truncations, _ = env.step(
            {a: np.zeros(2, np.float32) for a in env.possible_agents}
        )
        steps += 1
        assert not any(terminations.values())
    assert steps == env.cfg.max_cycles and all(truncations.values())
    with pytest.raises(RuntimeError):
        env.step({a: np.zeros(2, np.float32) for a in env.possible_agents})
