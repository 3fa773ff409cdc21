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
#: slots of docs/spec.md §1.6; history × that with ``EnvConfig.history``, the frames
#: stacked, newest last) → actions (B, 2).
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


#: Hidden variables the counterfactual-red probe can swap, in order of precedence
#: (docs/spec.md §4.4): red's type (a scripted red with 0 < red_contrarian_prob < 1),
#: then red's speed (red_speed_min < red_speed_max).
HIDDEN_VARIABLES = ("red_type", "red_speed")


def probe_hidden_variable(cfg: core.EnvConfig) -> str | None:
    """The hidden variable of ``cfg`` that the counterfactual-red probe swaps and the
    probes' ceilings count (docs/spec.md §4.4): ``"red_type"`` when a scripted red is a
    contrarian with a probability strictly between 0 and 1, else ``"red_speed"`` when red's
    speed is drawn from a range of positive width, else None (the default environment, and
    one whose only hidden variable is red's start delay: the probe is not defined)."""
    if cfg.scripted_red and 0.0 < cfg.red_contrarian_prob < 1.0:
        return "red_type"
    if cfg.red_speed_min < cfg.red_speed_max:
        return "red_speed"
    return None


def hidden_classes(cfg: core.EnvConfig, uniforms: np.ndarray) -> np.ndarray | None:
    """(N,) bool class of each episode's hidden variable (:func:`probe_hidden_variable`)
    from its start draws: red is a contrarian (``red_type``), or red's speed factor is in
    the upper half of its range, g ≥ (red_speed_min + red_speed_max) / 2 (``red_speed``).
    Two episodes **differ in the hidden variable** when their classes differ. None
    without a hidden variable."""
    name = probe_hidden_variable(cfg)
    if name is None:
        return None
    value = core.red_hidden_variables(cfg, uniforms)[name]
    if name == "red_type":
        return value.astype(bool)
    return value >= 0.5 * (cfg.red_speed_min + cfg.red_speed_max)


def counterfactual_donors(cfg: core.EnvConfig, uniforms: np.ndarray) -> np.ndarray | None:
    """The donors of the counterfactual-red probe (docs/spec.md §4.4): (N,) index of the
    episode of the same batch whose red slots episode j shows blue, always one of the
    other class (:func:`hidden_classes`). Within each class episodes are ordered, by
    episode index for red's type and by red's speed for red's speed (ties by index); the
    k-th of m episodes of a class gets the ⌊k·m'/m⌋-th of the m' episodes of the other
    class. So a slow red's donor is the fast red of the same rank within its half (about
    half the speed range faster), and the rarer type donates to several episodes.
    Deterministic, a function of the start draws only (the same for every trained seed).
    None when ``cfg`` has no hidden variable or the batch holds only one class."""
    classes = hidden_classes(cfg, uniforms)
    if classes is None:
        return None
    order = np.arange(classes.size)
    if probe_hidden_variable(cfg) == "red_speed":
        order = np.argsort(core.red_hidden_variables(cfg, uniforms)["red_speed"], kind="stable")
    groups = [order[~classes[order]], order[classes[order]]]
    if min(g.size for g in groups) == 0:
        return None
    donors = np.empty(classes.size, dtype=np.int64)
    for own, other in ((groups[0], groups[1]), (groups[1], groups[0])):
        donors[own] = other[(np.arange(own.size) * other.size) // own.size]
    return donors


def donor_ceiling(
    cfg: core.EnvConfig, uniforms: np.ndarray, donors: np.ndarray | None
) -> float | None:
    """A donor probe's **ceiling** (docs/spec.md §4.4): the share of episodes whose donor
    differs from them in the hidden variable (:func:`hidden_classes`), the largest share of
    a luring that depends on that variable alone the probe can remove. The shuffled-red
    probe's (:func:`shuffle_derangement`) is about 2p(1 − p) for red's type, about 1/2
    for red's speed; the counterfactual probe's is 1 by construction. None without a
    hidden variable or donors."""
    classes = hidden_classes(cfg, uniforms)
    if classes is None or donors is None:
        return None
    return float(np.mean(classes[donors] != classes))


@torch.no_grad()
def rollout(
    env_cfg: core.EnvConfig,
    uniforms: np.ndarray,
    red: MADDPG,
    blue: MADDPG | str | BluePolicy,
    device: str | torch.device = "cpu",
    blind_blue: bool = False,
    shuffle_red: bool = False,
    counterfactual_red: bool = False,
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
    episode's, that is not the real one; ``counterfactual_red``: the same with donors that
    differ in red's hidden variable (:func:`counterfactual_donors`; the counterfactual-red
    probe, §4.4; ValueError where ``env_cfg`` has none). What is recorded is what the
    environment showed in every case. Returns the trajectory arrays of the export format:
    ``red_pos``/``blue_pos`` (S, N, T+1, 2), ``landmarks`` (S, N, 2, 2), ``goal_index``
    (S, N), ``trapped``/``red_visible`` (S, N, T+1; ``red_visible``: blue sees red, at
    blue's sight radius), ``actions_red``/``actions_blue`` (S, N, T, 2; the given actions,
    or with ``env_cfg.record_applied_action`` the applied ones, ``core.applied_actions``),
    ``rewards`` (S, N, T, 2), and ``obs_blue`` (S, N, T+1, blue's observation size).
    With ``env_cfg.history`` > 1 both agents act on their stacked last frames
    (``core.ObservationHistory``) and a probe changes red's slots in every frame blue
    sees; ``obs_blue`` holds single frames (``core.stack_episode`` rebuilds the stacks).
    """
    s_count, n = red.n_seeds, uniforms.shape[0]
    _check_players(blue, s_count, blind_blue, shuffle_red, counterfactual_red)
    donors = _donors(env_cfg, uniforms, shuffle_red, counterfactual_red)
    probing = blind_blue or donors is not None
    t_len = env_cfg.max_cycles
    state = core.reset_from_uniforms(env_cfg, np.tile(uniforms, (s_count, 1)))
    b = state.batch_size
    records = _step_records(t_len, b, core.obs_dims(env_cfg)[1])
    pos, trapped, visible, obs_blue_all, actions, rewards = records
    views = _Views(env_cfg, s_count, n, donors if probing else False)
    for t in range(t_len + 1):
        out = core.outputs(env_cfg, state)  # observations, sight and rewards in one pass
        pos[t], trapped[t] = state.pos, state.trapped
        visible[t], obs_blue_all[t] = out.visible, out.obs_blue
        if t > 0:
            rewards[t - 1] = out.rewards  # the reward of step t-1 is read off state t
        if t == t_len:
            break
        seen, shown = views(np.concatenate([out.obs_red, out.obs_blue], 1), t)
        joint = torch.from_numpy(seen).to(device).view(s_count, n, -1)
        a_red = red.act(joint)[..., : core.ACTION_DIM].reshape(b, 2).cpu().numpy()
        if shown is not seen:
            joint = torch.from_numpy(shown).to(device).view(s_count, n, -1)
        obs_blue = shown[:, -views.blue_width :]
        a_blue = _blue_action(env_cfg, state, blue, joint, obs_blue, b)
        state = _advance(env_cfg, state, actions, t, np.stack([a_red, a_blue], axis=1))
    return _trajectories(state, records, s_count, n)


class _Views:
    """What each agent of :func:`rollout` acts on (docs/spec.md §1.6, §4.4): red on its
    real frames, blue on the frames it is shown (each through :func:`_probe_view` when
    probed); with ``history`` > 1 stacked (``core.ObservationHistory``), else the frame
    itself. ``donors``: False for no probe, None for the blind probe, else the donors."""

    def __init__(
        self, env_cfg: core.EnvConfig, s_count: int, n: int, donors: np.ndarray | None | bool
    ) -> None:
        dims = core.obs_dims(env_cfg)
        self.cfg, self.s_count, self.n, self.donors = env_cfg, s_count, n, donors
        self.red = core.ObservationHistory(env_cfg.history, dims)
        self.blue = core.ObservationHistory(env_cfg.history, dims)
        self.blue_width = core.input_dims(env_cfg)[1]

    def __call__(self, frame: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(red's joint input, blue's joint input) at step ``t`` from the joint frame."""
        seen = self.red.reset(frame) if t == 0 else self.red.push(frame)
        shown = frame
        if self.donors is not False:
            donors = None if self.donors is None else np.asarray(self.donors)
            shown = _probe_view(self.cfg, frame, self.s_count, self.n, donors)
        return seen, self.blue.reset(shown) if t == 0 else self.blue.push(shown)


def _advance(
    env_cfg: core.EnvConfig, state: core.State, actions: np.ndarray, t: int, given: np.ndarray
) -> core.State:
    """Record step ``t``'s actions (B, 2, 2) in ``actions`` (the applied ones with
    ``record_applied_action``, §1.13) and return the state after it."""
    actions[t] = given
    clipped = np.clip(actions[t], -1.0, 1.0)
    if env_cfg.record_applied_action:  # §1.13: what the physics applies
        actions[t] = core.applied_actions(env_cfg, state, clipped)
    return core.step(env_cfg, state, clipped)


def _check_players(
    blue: MADDPG | str | BluePolicy,
    s_count: int,
    blind_blue: bool,
    shuffle_red: bool,
    counterfactual_red: bool = False,
) -> None:
    """Refuse a blue, or a probe of blue, that :func:`rollout` cannot play."""
    if isinstance(blue, MADDPG) and blue.n_seeds != s_count:
        raise ValueError(f"blue has {blue.n_seeds} seeds, red {s_count}")
    if isinstance(blue, str) and blue not in SCRIPTED_BLUES:
        raise ValueError(f"unknown scripted blue {blue!r}; allowed: {SCRIPTED_BLUES}")
    probes = {"blind_blue": blind_blue, "shuffle_red": shuffle_red,
              "counterfactual_red": counterfactual_red}  # fmt: skip
    on = [name for name, wanted in probes.items() if wanted]
    if on and isinstance(blue, str):
        raise ValueError(f"a scripted blue does not look at red: {on[0]} needs a policy")
    if len(on) > 1:
        raise ValueError(f"{' and '.join(on)} are different probes: pick one")


def _donors(
    cfg: core.EnvConfig, uniforms: np.ndarray, shuffle_red: bool, counterfactual_red: bool
) -> np.ndarray | None:
    """The donor of each episode's red slots under a donor probe (None: no donor probe)."""
    if shuffle_red:
        return shuffle_derangement(uniforms.shape[0])
    if not counterfactual_red:
        return None
    donors = counterfactual_donors(cfg, uniforms)
    if donors is None:
        raise ValueError(
            "counterfactual_red needs a hidden variable of red (a scripted red's type or a "
            "speed range) with both classes in the batch (docs/spec.md §4.4)"
        )
    return donors


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
    frame: np.ndarray,
    s_count: int,
    n: int,
    donors: np.ndarray | None,
) -> np.ndarray:
    """A joint frame (B, red's + blue's observation) with every slot of blue's part that
    carries red (``core.red_slots``: red's offset and, when observed, its relative
    velocity) as a probe shows blue: zeroed (``donors`` None) or the donors' (a copy).
    With history > 1 every frame blue acts on went through here (docs/spec.md §4.4)."""
    blue_start = core.obs_dims(env_cfg)[0]  # blue's part of the joint observation
    columns = [blue_start + k for k in core.red_slots(env_cfg)]
    out = frame.copy()
    if donors is None:
        out[:, columns] = 0.0
    else:
        shown = frame.reshape(s_count, n, -1)[:, donors][..., columns]  # (S, N, k)
        out[:, columns] = shown.reshape(frame.shape[0], -1)
    return out


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
