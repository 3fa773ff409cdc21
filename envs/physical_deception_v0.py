"""PettingZoo view of the physical-deception environment: a batch of one of ``core``."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

from soo_marl.envs import core

RED_ID, BLUE_ID = core.RED_ID, core.BLUE_ID
AGENTS = (RED_ID, BLUE_ID)
RENDER_MODES = (None, "rgb_array")


class PhysicalDeceptionEnv(ParallelEnv):
    """Red (``adversary_0``) must find the goal; blue (``agent_0``) knows it (docs/spec.md §1.9).

    Actions are forces in ``Box(-1, 1, (2,))``; values outside [-1, 1] are clipped, a
    wrong shape, NaN or inf raise ``ValueError``. ``infos[agent]`` carries
    ``positions``, ``landmarks``, ``goal_index`` and ``trapped`` on every reset/step.
    """

    metadata = {"render_modes": ["rgb_array"], "name": "physical_deception_v0", "render_fps": 10}

    def __init__(
        self,
        baseline: str = "deceptive",
        max_cycles: int = 50,
        render_mode: str | None = None,
        **config: Any,
    ) -> None:
        if render_mode not in RENDER_MODES:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; allowed values: None, 'rgb_array'"
            )
        unknown = set(config) - set(core.EnvConfig.field_names())
        if unknown:
            allowed = core.EnvConfig.field_names()
            raise ValueError(f"unknown config field(s) {sorted(unknown)}; allowed: {allowed}")
        self.cfg = core.EnvConfig(baseline=baseline, max_cycles=max_cycles, **config)
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.state_: core.State | None = None
        self._np_random = np.random.default_rng()
        self._observation_spaces = {
            AGENTS[0]: spaces.Box(-np.inf, np.inf, (core.OBS_DIM_RED,), np.float32),
            AGENTS[1]: spaces.Box(-np.inf, np.inf, (core.OBS_DIM_BLUE,), np.float32),
        }
        self._action_spaces = {
            a: spaces.Box(-1.0, 1.0, (core.ACTION_DIM,), np.float32) for a in AGENTS
        }

    def observation_space(self, agent: str) -> spaces.Box:
        """Observation space of ``agent`` (built once per env)."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """Action space of ``agent`` (built once per env)."""
        return self._action_spaces[agent]

    def _outputs(self) -> tuple[dict, dict, np.ndarray]:
        """Observations, infos (one independent dict per agent) and (1, 2) rewards of the state.

        Nothing handed out aliases the state, so callers may mutate it freely: the
        observations are fresh arrays from :func:`core.outputs`, and each agent's info holds
        its own copies of positions (one row per agent) and landmarks.
        """
        s = self.state_
        out = core.outputs(self.cfg, s)
        pos, landmarks = s.pos[0], s.landmarks[0]
        goal_index, trapped = int(s.goal_index[0]), bool(s.trapped[0])
        red_pos, blue_pos = pos.copy(), pos.copy()  # one copy per agent's info
        infos = {
            RED_ID: {
                "positions": {RED_ID: red_pos[0], BLUE_ID: red_pos[1]},
                "landmarks": landmarks.copy(),
                "goal_index": goal_index,
                "trapped": trapped,
            },
            BLUE_ID: {
                "positions": {RED_ID: blue_pos[0], BLUE_ID: blue_pos[1]},
                "landmarks": landmarks.copy(),
                "goal_index": goal_index,
                "trapped": trapped,
            },
        }
        obs = {RED_ID: out.obs_red[0], BLUE_ID: out.obs_blue[0]}
        return obs, infos, out.rewards

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        """Start an episode; the same ``seed`` gives the same episode."""
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
            for i, a in enumerate(AGENTS):
                self._action_spaces[a].seed(seed + i)
        self.state_ = core.reset(self.cfg, self._np_random, 1)
        self.agents = list(AGENTS)
        obs, infos, _ = self._outputs()
        return obs, infos

    def step(self, actions: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
        """Apply both agents' actions for one step."""
        if not self.agents:
            raise RuntimeError("episode is over; call reset()")
        if RED_ID not in actions or BLUE_ID not in actions:
            missing = [a for a in AGENTS if a not in actions]
            raise ValueError(f"missing action(s) for {missing}")
        a = core.validate_joint_actions((actions[RED_ID], actions[BLUE_ID]), AGENTS)[None]
        self.state_ = core.step(self.cfg, self.state_, a)
        obs, infos, r = self._outputs()
        ((r_red, r_blue),) = r.tolist()
        rewards = {RED_ID: r_red, BLUE_ID: r_blue}
        truncated = self.state_.t >= self.cfg.max_cycles
        truncations = {RED_ID: truncated, BLUE_ID: truncated}
        terminations = {RED_ID: False, BLUE_ID: False}
        if truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        """RGB image of the current state (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        if self.state_ is None:
            raise RuntimeError("call reset() before render()")
        from soo_marl.envs.render import render_frame

        return render_frame(self.cfg, self.state_, 0)

    def close(self) -> None:
        """Nothing to release."""


def parallel_env(
    baseline: str = "deceptive",
    max_cycles: int = 50,
    render_mode: str | None = None,
    **config: Any,
) -> PhysicalDeceptionEnv:
    """The ParallelEnv; extra keywords override :class:`~soo_marl.envs.core.EnvConfig` fields."""
    return PhysicalDeceptionEnv(
        baseline=baseline, max_cycles=max_cycles, render_mode=render_mode, **config
    )


def env(**kwargs: Any):
    """The AEC version, via PettingZoo's parallel-to-AEC conversion."""
    e = parallel_to_aec(parallel_env(**kwargs))
    return (
        wrappers.OrderEnforcingWrapper(e)
        if not isinstance(e, wrappers.OrderEnforcingWrapper)
        else e
    )


raw_env = PhysicalDeceptionEnv
