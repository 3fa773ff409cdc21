"""Vectorised environments for training: S seeds × E envs stepped as one batch.

Both classes expose the same small interface the trainer uses: ``agents``, ``obs_dims``,
``act_dims``, ``reset(rngs)`` → joint observation (S, E, Σ obs), ``step(joint_action)`` →
(joint observation, rewards (S, E, n), done) and ``episode_stats()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from soo_marl.envs import core

if TYPE_CHECKING:
    from pettingzoo import ParallelEnv


class DeceptionVecEnv:
    """The physical-deception core with S·E worlds; seed s resets from its own Generator."""

    agents = core.AGENT_IDS
    #: The default configuration's sizes; an instance's follow its config (``core.obs_dims``).
    obs_dims: tuple[int, ...] = (core.OBS_DIM_RED, core.OBS_DIM_BLUE)
    act_dims = (core.ACTION_DIM, core.ACTION_DIM)

    def __init__(self, cfg: core.EnvConfig, n_seeds: int, envs_per_seed: int) -> None:
        self.cfg, self.n_seeds, self.envs_per_seed = cfg, n_seeds, envs_per_seed
        #: What each agent observes (``core.input_dims``): ``cfg.history`` frames of
        #: ``frame_dims`` (``core.obs_dims``); :meth:`reset` and :meth:`step` hand out the
        #: stacked joint observations, the replay buffer stores single frames.
        self.obs_dims = core.input_dims(cfg)
        self.frame_dims, self.history = core.obs_dims(cfg), int(cfg.history)
        self._frames = core.ObservationHistory(self.history, self.frame_dims)
        #: (S, E, 4) the actions the last :meth:`step` applied (``core.applied_actions``),
        #: kept only with ``cfg.record_applied_action``
        self.applied: np.ndarray | None = None
        self.episode_length = cfg.max_cycles
        self.state: core.State | None = None
        self._reached = np.zeros((n_seeds * envs_per_seed, 2), dtype=bool)

    def _current(self) -> core.State:
        """The worlds' state; only after :meth:`reset`."""
        if self.state is None:
            raise RuntimeError("DeceptionVecEnv: call reset() first")
        return self.state

    def _joint_obs(self, out: core.Outputs | None = None) -> np.ndarray:
        if out is None:
            out = core.outputs(self.cfg, self._current())
        joint = np.concatenate([out.obs_red, out.obs_blue], axis=1)
        return joint.reshape(self.n_seeds, self.envs_per_seed, -1)

    def reset(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Reset every world; seed s draws its E start states from ``rngs[s]``."""
        draws = core.reset_draws(self.cfg)
        u = np.concatenate([r.random((self.envs_per_seed, draws)) for r in rngs])
        self.state = core.reset_from_uniforms(self.cfg, u)
        self._reached[:] = False
        return self._frames.reset(self._joint_obs())

    def step(self, joint_action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Step every world with actions (S, E, 4) = (red 2, blue 2), clipped to [-1, 1]."""
        a = np.clip(joint_action.reshape(-1, 2, core.ACTION_DIM), -1.0, 1.0)
        if self.cfg.record_applied_action:  # §1.13: what the physics applies, recorded
            applied = core.applied_actions(self.cfg, self._current(), a)
            self.applied = applied.reshape(self.n_seeds, self.envs_per_seed, -1)
        self.state = state = core.step(self.cfg, self._current(), a)
        out = core.outputs(self.cfg, state)
        self._reached |= out.at_goal
        r = out.rewards.reshape(self.n_seeds, self.envs_per_seed, 2)
        return self._frames.push(self._joint_obs(out)), r, state.t >= self.episode_length

    def recorded_action(self, joint_action: np.ndarray) -> np.ndarray:
        """The joint action (S, E, 4) the replay buffer stores for the last :meth:`step`,
        given ``joint_action``: the applied one with ``record_applied_action``, else the
        given one itself."""
        if self.cfg.record_applied_action and self.applied is not None:
            return self.applied
        return joint_action

    def episode_stats(self) -> dict[str, np.ndarray]:
        """Per seed and env, for the episode so far: trapped, red/blue reached the goal."""
        shape = (self.n_seeds, self.envs_per_seed)
        return {
            "trap_rate": self._current().trapped.reshape(shape).astype(float),
            "red_goal_rate": self._reached[:, 0].reshape(shape).astype(float),
            "blue_goal_rate": self._reached[:, 1].reshape(shape).astype(float),
        }


class PettingZooVecEnv:
    """Adapter: S·E copies of any PettingZoo ``ParallelEnv`` with ``Box`` actions.

    Actions in [-1, 1] (the actors' tanh range) are mapped linearly onto each agent's
    Box. Episodes must have a fixed length (all copies end on the same step).
    """

    def __init__(self, env_fn: Callable[[], ParallelEnv], n_seeds: int, envs_per_seed: int) -> None:
        from gymnasium import spaces

        self.n_seeds, self.envs_per_seed = n_seeds, envs_per_seed
        self.envs = [env_fn() for _ in range(n_seeds * envs_per_seed)]
        e0 = self.envs[0]
        self.agents = tuple(e0.possible_agents)
        for a in self.agents:
            if not isinstance(e0.action_space(a), spaces.Box):
                raise ValueError(f"agent {a} has a non-Box action space {e0.action_space(a)}")
        self.obs_dims = tuple(int(np.prod(e0.observation_space(a).shape)) for a in self.agents)
        self.act_dims = tuple(int(np.prod(e0.action_space(a).shape)) for a in self.agents)
        self._low = [np.asarray(e0.action_space(a).low, dtype=np.float64) for a in self.agents]
        self._high = [np.asarray(e0.action_space(a).high, dtype=np.float64) for a in self.agents]
        self._returns = np.zeros((n_seeds * envs_per_seed, len(self.agents)))

    def _stack(self, obs_dicts: list[dict]) -> np.ndarray:
        joint = np.stack(
            [np.concatenate([np.ravel(o[a]) for a in self.agents]) for o in obs_dicts]
        ).astype(np.float32)
        return joint.reshape(self.n_seeds, self.envs_per_seed, -1)

    def reset(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Reset every copy with a seed drawn from its training seed's Generator."""
        seeds = np.concatenate([r.integers(0, 2**31 - 1, self.envs_per_seed) for r in rngs])
        self._returns[:] = 0.0
        return self._stack([e.reset(seed=int(s))[0] for e, s in zip(self.envs, seeds, strict=True)])

    def step(self, joint_action: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Step every copy; returns joint observations, rewards (S, E, n) and done."""
        flat = np.clip(joint_action.reshape(len(self.envs), -1), -1.0, 1.0)
        splits = np.cumsum(self.act_dims)[:-1]
        obs, rews, dones = [], [], []
        for env, a in zip(self.envs, flat, strict=True):
            parts = np.split(a, splits)
            acts = {
                ag: (lo + (p + 1.0) * 0.5 * (hi - lo)).astype(np.float32)
                for ag, p, lo, hi in zip(self.agents, parts, self._low, self._high, strict=True)
            }
            o, r, term, trunc, _ = env.step(acts)
            obs.append(o)
            rews.append([r[ag] for ag in self.agents])
            dones.append(all(term[ag] or trunc[ag] for ag in self.agents))
        if any(dones) and not all(dones):
            raise RuntimeError("PettingZooVecEnv needs episodes of a fixed length")
        r = np.asarray(rews)
        self._returns += r
        return self._stack(obs), r.reshape(self.n_seeds, self.envs_per_seed, -1), dones[0]

    def episode_stats(self) -> dict[str, np.ndarray]:
        """Per seed and env: nothing beyond returns (tracked by the trainer)."""
        return {}


def mean_policy_return(
    vec_env: DeceptionVecEnv | PettingZooVecEnv,
    policy: Callable[[np.ndarray], np.ndarray],
    rngs: Sequence[np.random.Generator],
    rounds: int = 1,
) -> np.ndarray:
    """Mean undiscounted episode return per seed and agent, (S, n), of ``policy`` played
    on ``vec_env`` for ``rounds`` batches of episodes.

    ``policy`` maps joint observations (S, E, Σ obs) to joint actions in [-1, 1].
    """
    total: np.ndarray | None = None
    for _ in range(rounds):
        obs = vec_env.reset(rngs)
        ret: np.ndarray | float = 0.0
        done = False
        while not done:
            obs, r, done = vec_env.step(policy(obs))
            ret = ret + r
        total = np.asarray(ret) if total is None else total + ret
    if total is None:
        raise ValueError("mean_policy_return needs rounds >= 1")
    return total.mean(axis=1) / rounds
