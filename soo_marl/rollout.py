"""Deterministic evaluation rollouts on the batched core, exported as trajectory arrays.

Every trained seed of a model plays the same start states (drawn from fixed evaluation
seeds), so conditions can be compared episode by episode. Red and blue may come from
different models (cross-play) or blue may be scripted (probes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from soo_marl.agents.maddpg import MADDPG
from soo_marl.envs import core

# the scripted policies live in soo_marl.envs.scripted; re-exported here, their old home
from soo_marl.envs.scripted import (  # noqa: F401
    SCRIPTED_BLUES,
    scripted_blue_action,
    scripted_red_action,
)

#: Default evaluation seeds (the published code's): the one home of this default, read by
#: `soo-marl evaluate`, rendering and the sweep's cost model.
DEFAULT_EVAL_SEEDS = (155, 714, 1908, 1549, 1195, 1812, 542, 2844)
#: Episodes per evaluation seed (so 8 × 500 = 4,000 per trained seed by default), for
#: ``soo-marl evaluate`` and a study's evaluate stage that does not say.
DEFAULT_EVAL_EPISODES = 500


def start_uniforms(
    eval_seeds: Sequence[int], episodes: int, draws: int = core.RESET_DRAWS
) -> np.ndarray:
    """(len(eval_seeds) · episodes, draws) start draws; eval seed k fills block k.

    ``draws`` is the number of uniforms one world's reset takes (``core.reset_draws``)."""
    return np.concatenate(
        [np.random.default_rng(int(s)).random((episodes, draws)) for s in eval_seeds]
    )


#: A blue policy given as a function: blue observations (B, 10; B, 12 with the velocity
#: slots of docs/spec.md §1.6) → actions (B, 2).
BluePolicy = Callable[[np.ndarray], np.ndarray]


def shuffle_derangement(n: int) -> np.ndarray:
    """The fixed derangement of the shuffled-red probe (docs/spec.md §4.4): episode j
    shows blue the red of episode (j + n // 2) mod n of the same batch (and trained
    seed). No episode keeps its own red (n ≥ 2); with the default evaluation (8 seeds ×
    500 episodes) the donor is the same episode index of the evaluation seed four
    places on, so donor and receiver never share a start state."""
    if n < 2:
        raise ValueError(f"shuffling red needs at least 2 episodes, got {n}")
    return (np.arange(n) + n // 2) % n


@torch.no_grad()
def rollout(
    env_cfg: core.EnvConfig,
    uniforms: np.ndarray,
    red: MADDPG,
    blue: MADDPG | str | BluePolicy,
    device: str | torch.device = "cpu",
    blind_blue: bool = False,
    shuffle_red: bool = False,
) -> dict[str, np.ndarray]:
    """Play every start state with every trained seed; deterministic actors.

    ``red`` supplies red's actions (its seed stack defines S); ``blue`` is a model with
    the same seed count (its blue actor is used; cross-play when it is another run's), the
    name of a scripted blue, or a function of blue's observations. ``blind_blue``: blue
    acts on observations whose red slots (``core.red_slots``: 6–7, and 10–11 with the
    velocity slots of §1.6) are forced to 0 at every step (the blind probe, docs/spec.md
    §4.4); ``shuffle_red``: at every step blue's red slots are those of another episode
    of the same batch and trained seed at the same step (:func:`shuffle_derangement`; the
    shuffled-red probe, §4.4), so blue sees a plausible red, in or out of sight as that
    episode's, that is not the real one. What is recorded is what the environment showed
    in both cases. Returns the trajectory arrays of the export format:
    ``red_pos``/``blue_pos`` (S, N, T+1, 2), ``landmarks`` (S, N, 2, 2), ``goal_index``
    (S, N), ``trapped``/``red_visible`` (S, N, T+1; ``red_visible``: blue sees red, at
    blue's sight radius), ``actions_red``/``actions_blue`` (S, N, T, 2; the given actions,
    or with ``env_cfg.record_applied_action`` the applied ones, ``core.applied_actions``),
    ``rewards`` (S, N, T, 2), and ``obs_blue`` (S, N, T+1, blue's observation size).
    """
    s_count, n = red.n_seeds, uniforms.shape[0]
    _check_players(blue, s_count, blind_blue, shuffle_red)
    donors = shuffle_derangement(n) if shuffle_red else None
    probing = blind_blue or shuffle_red
    t_len = env_cfg.max_cycles
    state = core.reset_from_uniforms(env_cfg, np.tile(uniforms, (s_count, 1)))
    b = state.batch_size
    records = _step_records(t_len, b, core.obs_dims(env_cfg)[1])
    pos, trapped, visible, obs_blue_all, actions, rewards = records
    for t in range(t_len + 1):
        out = core.outputs(env_cfg, state)  # observations, sight and rewards in one pass
        pos[t], trapped[t] = state.pos, state.trapped
        visible[t], obs_blue_all[t] = out.visible, out.obs_blue
        if t > 0:
            rewards[t - 1] = out.rewards  # the reward of step t-1 is read off state t
        if t == t_len:
            break
        joint = torch.from_numpy(np.concatenate([out.obs_red, out.obs_blue], 1)).to(device)
        joint = joint.view(s_count, n, -1)
        a_red = red.act(joint)[..., : core.ACTION_DIM].reshape(b, 2).cpu().numpy()
        obs_blue = out.obs_blue
        if probing:
            obs_blue, joint = _probe_view(env_cfg, obs_blue, joint, s_count, n, donors)
        a_blue = _blue_action(env_cfg, state, blue, joint, obs_blue, b)
        actions[t] = np.stack([a_red, a_blue], axis=1)
        given = np.clip(actions[t], -1.0, 1.0)
        if env_cfg.record_applied_action:  # §1.13: what the physics applies
            actions[t] = core.applied_actions(env_cfg, state, given)
        state = core.step(env_cfg, state, given)
    return _trajectories(state, records, s_count, n)


def _check_players(
    blue: MADDPG | str | BluePolicy, s_count: int, blind_blue: bool, shuffle_red: bool
) -> None:
    """Refuse a blue, or a probe of blue, that :func:`rollout` cannot play."""
    if isinstance(blue, MADDPG) and blue.n_seeds != s_count:
        raise ValueError(f"blue has {blue.n_seeds} seeds, red {s_count}")
    if isinstance(blue, str) and blue not in SCRIPTED_BLUES:
        raise ValueError(f"unknown scripted blue {blue!r}; allowed: {SCRIPTED_BLUES}")
    if blind_blue and isinstance(blue, str):
        raise ValueError("a scripted blue does not look at red: blind_blue needs a policy")
    if shuffle_red and isinstance(blue, str):
        raise ValueError("a scripted blue does not look at red: shuffle_red needs a policy")
    if shuffle_red and blind_blue:
        raise ValueError("blind_blue and shuffle_red are two different probes: pick one")


def _step_records(
    t_len: int, b: int, obs_dim_blue: int = core.OBS_DIM_BLUE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Empty per-step records of positions, trap, sight, blue's view, actions, rewards."""
    return (
        np.empty((t_len + 1, b, 2, 2)),
        np.empty((t_len + 1, b), dtype=bool),
        np.empty((t_len + 1, b), dtype=bool),
        np.empty((t_len + 1, b, obs_dim_blue), dtype=np.float32),
        np.empty((t_len, b, 2, 2)),
        np.empty((t_len, b, 2)),
    )


def _probe_view(
    env_cfg: core.EnvConfig,
    obs_blue: np.ndarray,
    joint: torch.Tensor,
    s_count: int,
    n: int,
    donors: np.ndarray | None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Every slot carrying red (``core.red_slots``: red's offset and, when observed, its
    relative velocity) as a probe shows blue: zeroed (``donors`` None) or the donors'."""
    slots = core.red_slots(env_cfg)
    blue_start = core.obs_dims(env_cfg)[0]  # blue's part of the joint observation
    columns = [blue_start + k for k in slots]
    obs_blue = obs_blue.copy()
    joint = joint.clone()
    if donors is None:
        obs_blue[:, slots] = 0.0
        joint[..., columns] = 0.0
    else:
        shown = obs_blue.reshape(s_count, n, -1)[:, donors][..., slots]  # (S, N, k)
        obs_blue[:, slots] = shown.reshape(obs_blue.shape[0], -1)
        joint[..., columns] = torch.from_numpy(shown).to(joint.device)
    return obs_blue, joint


def _blue_action(
    env_cfg: core.EnvConfig,
    state: core.State,
    blue: MADDPG | str | BluePolicy,
    joint: torch.Tensor,
    obs_blue: np.ndarray,
    b: int,
) -> np.ndarray:
    """Blue's actions (B, 2) at one step: scripted, a model's blue actor or a policy."""
    if isinstance(blue, str):
        return scripted_blue_action(env_cfg, state, blue)
    if isinstance(blue, MADDPG):
        return blue.act(joint)[..., core.ACTION_DIM :].reshape(b, 2).cpu().numpy()
    return np.asarray(blue(obs_blue), dtype=np.float64).reshape(b, 2)


def _trajectories(
    state: core.State, records: tuple[np.ndarray, ...], s_count: int, n: int
) -> dict[str, np.ndarray]:
    """The export arrays (S, N, ...) of :func:`rollout`'s step records and final state."""
    pos, trapped, visible, obs_blue_all, actions, rewards = records
    return {
        "red_pos": _by_episode(pos[:, :, core.RED], s_count, n),
        "blue_pos": _by_episode(pos[:, :, core.BLUE], s_count, n),
        "landmarks": state.landmarks.reshape(s_count, n, 2, 2),
        "goal_index": state.goal_index.reshape(s_count, n),
        "trapped": _by_episode(trapped, s_count, n),
        "red_visible": _by_episode(visible, s_count, n),
        "actions_red": _by_episode(actions[:, :, core.RED], s_count, n),
        "actions_blue": _by_episode(actions[:, :, core.BLUE], s_count, n),
        "rewards": _by_episode(rewards, s_count, n),
        "obs_blue": _by_episode(obs_blue_all, s_count, n),
    }


def _by_episode(x: np.ndarray, s_count: int, n: int) -> np.ndarray:
    """A per-step record (T, B, ...) as the export's (S, N, T, ...)."""
    x = np.moveaxis(x, 0, 1)
    return x.reshape(s_count, n, *x.shape[1:])
