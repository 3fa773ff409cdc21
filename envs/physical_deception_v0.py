"""PettingZoo view of the physical-deception environment: a batch of one of ``core``.

Physical deception
==================

| Import             | ``from soo_marl.envs import physical_deception_v0``             |
|--------------------|-----------------------------------------------------------------|
| Registered id      | ``soo_marl/physical_deception_v0`` (where PettingZoo has a registry) |
| Actions            | Continuous                                                      |
| Parallel API       | Yes (``parallel_env``); AEC through ``env``                     |
| Manual control     | No                                                              |
| Agents             | ``agents = ['adversary_0', 'agent_0']``                         |
| Number of agents   | 2                                                               |
| Action shape       | (2,)                                                            |
| Action values      | ``Box(-1.0, 1.0, (2,), float32)``                               |
| Observation shape  | (6,) for ``adversary_0``, (10,) for ``agent_0``                 |
| Observation values | ``Box(-inf, inf, float32)``                                     |
| Episode length     | 50 steps (``max_cycles``), truncation only                      |
| Render modes       | ``None``, ``"rgb_array"`` (10 frames per second)                |

Two agents and two landmarks in a square arena with walls at x, y = ±1. One landmark is
the **goal**, the other the **fake**; which is which is drawn per episode. Blue
(``agent_0``) observes which landmark is the goal; red (``adversary_0``) does not and can
only learn it from blue's behaviour. The two agents see each other only when their
centres are within the sight radius (0.125 by default, so only while their bodies
overlap). Red is **trapped** from the first step that ends with its centre within 0.16 of
the fake landmark; a trapped red cannot move for the rest of the episode. With the
``deceptive`` baseline blue is paid for every step red spends trapped, so it may learn
to lead red to the fake landmark; with the ``honest`` baseline it is not. It is the
physical-deception task of MPE (``simple_adversary``) with one blue agent, a sight radius,
the trap and per-step rewards; docs/spec.md §1.1–§1.11 specify it with formulas and §5.1
lists where it differs from the paper's version.

Observations
------------

float32, computed in float64; every position is relative to the observing agent
(``p_r`` red's, ``p_b`` blue's position). "In sight" means centre distance ≤
``sight_radius`` (each agent's own radius when ``blue_sight_radius`` /
``red_sight_radius`` are set, §1.12); out of sight the other agent's slots are 0. No agent observes
absolute positions or velocities.

``adversary_0`` (red), 6 values:

| slots | content                                               |
|-------|-------------------------------------------------------|
| 0, 1  | landmark 0 − p_r                                      |
| 2, 3  | landmark 1 − p_r                                      |
| 4, 5  | p_b − p_r while in sight, else (0, 0)                 |

``agent_0`` (blue), 10 values:

| slots | content                                               |
|-------|-------------------------------------------------------|
| 0, 1  | goal − p_b (equal to slots 2, 3 or to slots 4, 5)     |
| 2, 3  | landmark 0 − p_b                                      |
| 4, 5  | landmark 1 − p_b                                      |
| 6, 7  | p_r − p_b while in sight, else (0, 0)                 |
| 8     | trap flag: 1.0 once red is trapped, else 0.0          |
| 9     | the trap flag again                                   |

Optional velocity slots (off by default, docs/spec.md §1.6): with ``red_sees_velocity``
red's observation gains slots 6, 7 (8 values), v_b − v_r while blue is in red's sight,
else (0, 0); with ``blue_sees_velocity`` blue's gains slots 10, 11 (12 values),
v_r − v_b while red is in blue's sight, else (0, 0). The observation spaces follow.

Optional history (off by default, docs/spec.md §1.6): with ``history=k`` > 1 each agent
observes its last k observations (the layouts above, with or without the velocity slots)
side by side, oldest first and newest last; before the episode's start the frames are all
0. Frame j of an agent with frame size w is slots j·w … j·w + w − 1; blue's slots that
carry red are 6, 7 (and 10, 11) of every frame. The observation spaces are k times as
wide.

Actions
-------

Each agent's action is a force direction a = (a_x, a_y) in ``Box(-1, 1, (2,), float32)``;
values outside [-1, 1] are clipped, a wrong shape, NaN or inf raise ``ValueError``
naming the agent. Each step: v ← 0.75·v + 0.1·(5·a + wall force), x ← x + 0.1·v (so a
constant action reaches a speed of 2·a per axis). A trapped red's velocity is held at 0.

| index | meaning                              |
|-------|--------------------------------------|
| 0     | force along x (−1: left, +1: right)  |
| 1     | force along y (−1: down, +1: up)     |

Rewards
-------

Per agent and step, read off the state after the step; [·] is 1 when the condition
holds. "At the goal" is a centre distance below 0.16 (twice the landmark radius).

| agent           | baseline      | reward per step                         | values       |
|-----------------|---------------|-----------------------------------------|--------------|
| ``adversary_0`` | both          | 5·[red at the goal] + 1·[in sight]      | 0, 1, 5, 6   |
| ``agent_0``     | ``deceptive`` | 5·[blue at the goal] + 10·[red trapped] | 0, 5, 10, 15 |
| ``agent_0``     | ``honest``    | 5·[blue at the goal]                    | 0, 5         |

Arguments
---------

``parallel_env(baseline="deceptive", max_cycles=50, render_mode=None, **fields)`` and
``env(**same)`` (AEC). ``fields`` are any fields of ``core.EnvConfig`` (docs/spec.md
§1.10), unknown names are refused:

* ``baseline="deceptive"``: blue's reward, ``"deceptive"`` or ``"honest"``.
* ``max_cycles=50``: episode length in steps.
* ``render_mode=None``: ``None`` or ``"rgb_array"``.
* ``sight_radius=0.125``: the agents see each other at centre distance ≤ this.
* ``start_radius=0.125``: blue starts within this distance of red.
* ``spawn_range=0.825``: red and the landmarks start uniform in [−0.825, 0.825]².
* ``goal_reward=5.0``, ``red_sight_reward=1.0``, ``trap_reward=10.0``: the rewards above.
* ``arena_half_width=1.0``, ``wall_width=0.1``, ``agent_radius=0.15``,
  ``landmark_radius=0.08``, ``dt=0.1``, ``damping=0.25``, ``mass=1.0``,
  ``sensitivity=5.0``, ``contact_force=100.0``, ``contact_margin=0.001``: geometry and
  physics.
* ``red_speed_min=1.0``, ``red_speed_max=1.0``, ``red_delay_max=0``: closed-loop variants
  of red's motion (a per-episode speed factor, a start delay), off at these values
  (docs/spec.md §1.11).
* ``guide_reward=0.0``, ``trap_deadline=0``, ``blue_sight_radius=0.0``,
  ``red_sight_radius=0.0``, ``start_distance_min=0.0``, ``red_leash=0``: more closed-loop
  options, off at these values (docs/spec.md §1.12): blue paid g·[red at the goal] per
  step under both baselines; the trap bonus paid only for traps by step t_max; separate
  sight radii for blue's and red's observations (red's also for its sight reward; 0:
  ``sight_radius``); blue's start distance in [``start_distance_min``,
  ``start_radius``]; red's action force zero once blue has been out of red's sight for
  k consecutive steps. The fetch design: blue's sight radius 0.8, red's 0.4, blue
  starting 0.45 to 0.75 from red.
* ``red_policy="learned"``, ``red_contrarian_prob=0.0``: the scripted red with a hidden
  type (docs/spec.md §1.13): with ``red_policy`` ``"scripted"`` red's given action is
  replaced by a fixed rule (``soo_marl.envs.scripted.scripted_red_action``): with blue in
  red's sight a follower heads for blue and a contrarian (probability
  ``red_contrarian_prob`` per episode, observed by no one) for the landmark farther from
  blue; no force with blue out of sight.
* ``red_sees_velocity=False``, ``blue_sees_velocity=False``: the other agent's velocity
  relative to one's own, as two more observation slots while in sight (above).
* ``history=1``: the number of last observations each agent observes, stacked (above).
* ``record_applied_action=False``: for the trainer and the evaluation exports, not the
  env: record the action the physics applied (docs/spec.md §1.13); no effect here.

Episode end
-----------

Episodes end by truncation only: after ``max_cycles`` steps every agent's
``truncations`` entry is True and ``agents`` becomes empty; ``terminations`` are always
False. Stepping a finished episode raises ``RuntimeError``. ``reset(seed=s)`` makes the
same start state as evaluation episode 0 of evaluation seed ``s``; ``infos[agent]``
holds ``positions``, ``landmarks``, ``goal_index`` and ``trapped`` after every reset and
step. ``render()`` returns a (518, 400, 3) uint8 image: the arena above an info panel.

Version history
---------------

* v0: the first and only version. The closed-loop variant fields were added later as
  options that are off by default; with their defaults the environment, its start
  states included, is unchanged.
"""

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
        baseline: str = core.EnvConfig.baseline,
        max_cycles: int = core.EnvConfig.max_cycles,
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
        dims = core.input_dims(self.cfg)  # 6, 10 (8, 12 with velocity slots; × history)
        self._frames = core.ObservationHistory(self.cfg.history, core.obs_dims(self.cfg))
        self._observation_spaces = {
            a: spaces.Box(-np.inf, np.inf, (d,), np.float32)
            for a, d in zip(AGENTS, dims, strict=True)
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

    def _outputs(self, out: core.Outputs | None = None) -> tuple[dict, dict, np.ndarray]:
        """Observations, infos (one independent dict per agent) and (1, 2) rewards of the
        state, from its :func:`core.outputs` ``out`` (computed when not given).

        Nothing handed out aliases the state, so callers may mutate it freely: the
        observations are fresh arrays from :func:`core.outputs`, and each agent's info holds
        its own copies of positions (one row per agent) and landmarks.
        """
        s = self.state_
        if s is None:
            raise RuntimeError("call reset() first")
        if out is None:
            out = core.outputs(self.cfg, s)
        pos, landmarks = s.pos[0], s.landmarks[0]
        goal_index, trapped = s.goal_index.item(), s.trapped.item()  # int, bool
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
        return self._stacked(obs, True), infos

    def _stacked(self, obs: dict[str, np.ndarray], first: bool) -> dict[str, np.ndarray]:
        """Each agent's last ``history`` frames, newest last, zeros before the episode's
        start (docs/spec.md §1.6); the frames themselves with history 1."""
        if self.cfg.history == 1:
            return obs
        frame = np.concatenate([obs[RED_ID], obs[BLUE_ID]])
        joint = self._frames.reset(frame) if first else self._frames.push(frame)
        red = self._observation_spaces[RED_ID].shape[0]
        return {RED_ID: joint[:red].copy(), BLUE_ID: joint[red:].copy()}

    def step(self, actions: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
        """Apply both agents' actions for one step."""
        if not self.agents or self.state_ is None:
            raise RuntimeError("episode is over; call reset()")
        if RED_ID not in actions or BLUE_ID not in actions:
            missing = [a for a in AGENTS if a not in actions]
            raise ValueError(f"missing action(s) for {missing}")
        a = core.validate_joint_actions((actions[RED_ID], actions[BLUE_ID]), AGENTS)[None]
        self.state_, out = core.step_outputs(self.cfg, self.state_, a)
        obs, infos, r = self._outputs(out)
        obs = self._stacked(obs, False)
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
    baseline: str = core.EnvConfig.baseline,
    max_cycles: int = core.EnvConfig.max_cycles,
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
