"""Probes of blue's use of red that do not rely on the learned "out of sight" code
(docs/spec.md §4.15–§4.16): red decodability from blue's hidden activations and the
weight norm of blue's first layer on red's observation slots.

Everything here is computed from the exported trajectory arrays (``trajectories.npz``,
docs/spec.md §4.2) and the run's saved weights, so anyone can recompute it. The
shuffled-red probe itself is a rollout option (``rollout.rollout(…, shuffle_red=True)``,
derangement :func:`soo_marl.rollout.shuffle_derangement`); trapped steps are
:func:`soo_marl.metrics.trapped_steps`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl import metrics, rundir
from soo_marl.agents.maddpg import MADDPG
from soo_marl.envs import core

#: Ridge penalties probe v2 chooses from, on SD-floored features (docs/results/probe_v2.md).
ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)
#: Probe v2's ridge penalty per hidden layer (h1, h2), chosen on SOO study 2's 32 parents
#: (800 episodes per seed, the default evaluation seeds) by ``soo-marl probe-validate`` on
#: 2026-12-08 and frozen for every arm and later study (docs/results/probe_v2.md).
PROBE_ALPHA = (1.0, 1000.0)
#: Folds of probe v2's cross-validation; episode k of an evaluation is in fold k mod FOLDS.
FOLDS = 5
#: Floor of a unit's SD in probe v2's scaling, as a fraction of the root-mean-square SD of
#: the layer's units: a near-constant unit is amplified at most 1 / SD_FLOOR times more
#: than a typical one.
SD_FLOOR = 0.1
#: Probe v1's ridge penalty (α = 1 on standardised features, one even/odd split; kept to
#: set v1 beside v2 in the validation, docs/results/probe_v2.md).
V1_ALPHA = 1.0
#: The probe version metrics.json records (docs/spec.md §4.15).
PROBE_VERSION = 2
#: Rows of blue activations computed at once (bounds memory: 65,536 × 128 float32 = 32 MiB).
HIDDEN_CHUNK = 65_536


# ------------------------------------------------------------------ red decodability


def cv_r2(
    features: np.ndarray,
    target: np.ndarray,
    episode: np.ndarray,
    alphas: Sequence[float] = ALPHA_GRID,
    folds: int = FOLDS,
) -> np.ndarray:
    """Probe v2's out-of-fold R² (one per ``alphas``) of ridge probes predicting ``target``
    (M, K) from ``features`` (M, F), cross-validated in folds grouped by ``episode`` (M,)
    (row in fold ``episode mod folds``).

    Each fold is predicted by the probe fitted on the others: features centred and divided
    by max(SD, :data:`SD_FLOOR` × the RMS SD of the units) of the fitting rows, targets
    centred with their mean. R² = 1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖² over every row, ȳ the mean of
    all rows; the caller floors it at 0 (:func:`bounded`). NaN when fewer than two folds
    have rows, or the targets do not vary (docs/results/probe_v2.md)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(target, np.float64).reshape(len(x), -1)
    fold = np.asarray(episode) % folds
    present = np.unique(fold)
    total = ((y - y.mean(0)) ** 2).sum()
    if len(present) < 2 or total == 0:
        return np.full(len(alphas), np.nan)
    sse = np.zeros(len(alphas))
    eye = np.eye(x.shape[1])
    for f in present:
        fit, test = fold != f, fold == f
        x_fit = x[fit]
        mu, sd = x_fit.mean(0), x_fit.std(0)
        floor = SD_FLOOR * np.sqrt((sd**2).mean())
        scale = np.maximum(sd, floor) if floor > 0 else np.ones_like(sd)
        x_fit = (x_fit - mu) / scale
        y_mu = y[fit].mean(0)
        gram, xty = x_fit.T @ x_fit, x_fit.T @ (y[fit] - y_mu)
        x_test = (x[test] - mu) / scale
        for i, alpha in enumerate(alphas):
            w = np.linalg.solve(gram + alpha * eye, xty)
            sse[i] += ((y[test] - y_mu - x_test @ w) ** 2).sum()
    return 1.0 - sse / total


def bounded(r2: np.ndarray | float) -> np.ndarray:
    """Probe v2's measure D = max(0, R²) in [0, 1] (NaN stays NaN)."""
    return np.maximum(np.asarray(r2, np.float64), 0.0)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = V1_ALPHA) -> np.ndarray:
    """Closed-form ridge weights (F, K) of centred targets ``y`` (M, K) on ``x`` (M, F):
    (xᵀx + α I)⁻¹ xᵀy, in float64. The caller centres and scales (no intercept here)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)  # no copy when float64
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y)


def red_decodability_v1(
    hidden: np.ndarray, target: np.ndarray, train_mask: np.ndarray, alpha: float = V1_ALPHA
) -> float:
    """Probe v1, kept only to be set beside v2: held-out R² (unbounded below) of a ridge
    probe fitted on the rows where ``train_mask`` is true, features standardised by the
    training SD (only an exact 0 guarded). NaN when either side has fewer than 2 rows or
    the test targets do not vary."""
    y = np.asarray(target, np.float64).reshape(len(target), -1)
    train = np.asarray(train_mask, bool)
    test = ~train
    if train.sum() < 2 or test.sum() < 2:
        return float("nan")
    x = np.asarray(hidden)
    x_fit = x[train].astype(np.float64)
    mu, sd = x_fit.mean(0), x_fit.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    y_mu = y[train].mean(0)
    w = ridge_fit((x_fit - mu) / sd, y[train] - y_mu, alpha)
    pred = (x[test].astype(np.float64) - mu) / sd @ w + y_mu
    total = ((y[test] - y[test].mean(0)) ** 2).sum()
    if total == 0:
        return float("nan")
    return float(1.0 - ((y[test] - pred) ** 2).sum() / total)


def blue_observations(cfg: core.EnvConfig, traj: Mapping[str, np.ndarray]) -> np.ndarray:
    """Blue's observations (..., N, T+1, width), float32, rebuilt from trajectory arrays
    (positions, landmarks, goal index, trap and sight flags): what the environment
    showed blue at every state (docs/spec.md §1.6), stacked as blue read them with
    ``history`` > 1 (:func:`core.stack_episode`). With ``blue_sees_velocity`` the
    velocities are rebuilt from the positions (:func:`core.velocities_from_positions`,
    equal up to rounding)."""
    red, blue = np.asarray(traj["red_pos"], np.float64), np.asarray(traj["blue_pos"], np.float64)
    lead = red.shape[:-1]  # (..., N, T+1)
    t1 = lead[-1]
    landmarks = np.asarray(traj["landmarks"], np.float64)
    pos = np.stack([red, blue], axis=-2)  # (..., N, T+1, 2, 2)
    vel = np.zeros((1, 2, 2))
    if cfg.red_sees_velocity or cfg.blue_sees_velocity:
        vel = core.velocities_from_positions(cfg, pos, axis=-3).reshape(-1, 2, 2)
    state = core.State(
        pos=pos.reshape(-1, 2, 2),
        vel=vel,
        landmarks=np.repeat(landmarks[..., None, :, :], t1, axis=-3).reshape(-1, 2, 2),
        goal_index=np.repeat(np.asarray(traj["goal_index"], np.int64)[..., None], t1, -1).ravel(),
        trapped=np.asarray(traj["trapped"], bool).ravel(),
        t=0,
    )
    _, obs_blue = core.observe(cfg, state, np.asarray(traj["red_visible"], bool).ravel())
    obs = obs_blue.reshape(*lead, core.obs_dims(cfg)[1])
    return core.stack_episode(obs, cfg.history, axis=-2)


@torch.no_grad()
def blue_hidden(model: MADDPG, obs_blue: np.ndarray, seed_index: int) -> np.ndarray:
    """Blue's hidden activations (h1, h2 concatenated: (M, 128) for 64-wide layers) of
    the trained seed at stack index ``seed_index`` on its observations ``obs_blue``
    (M, 10): eval-mode actor, running BatchNorm statistics, float32."""
    model.actor.eval()
    blue = model.n_agents - 1
    member = torch.tensor([seed_index * model.n_agents + blue], device=model.device)
    obs = torch.as_tensor(np.asarray(obs_blue, np.float32), device=model.device)
    width = model.obs_width - obs.shape[-1]
    if width:
        obs = torch.nn.functional.pad(obs, (0, width))
    chunks = []
    for i in range(0, obs.shape[0], HIDDEN_CHUNK):
        _, hidden = model.actor(obs[None, i : i + HIDDEN_CHUNK], members=member)
        chunks.append(torch.cat(hidden, dim=-1)[0].cpu().numpy())
    if not chunks:
        return np.empty((0, sum(model.cfg.hidden)), np.float32)
    return np.concatenate(chunks)


#: The trajectory arrays the decodability probe reads.
_TRAJ_KEYS = ("red_pos", "blue_pos", "landmarks", "goal_index", "trapped", "red_visible")


def in_sight_rows(
    cfg: core.EnvConfig, traj: Mapping[str, np.ndarray], seed_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probe's rows of one trained seed: blue's observations (M, 10), red's true
    offset from blue (M, 2) and the episode index (M,) of every in-sight state (red
    visible to blue) of its evaluation."""
    one = {k: np.asarray(traj[k])[seed_index] for k in _TRAJ_KEYS}
    sight = one["red_visible"]
    episode = np.broadcast_to(np.arange(sight.shape[0])[:, None], sight.shape)[sight]
    obs = blue_observations(cfg, one)[sight]
    return obs, (one["red_pos"] - one["blue_pos"])[sight], episode


def hidden_layers(model: MADDPG, obs: np.ndarray, seed_index: int) -> list[np.ndarray]:
    """Blue's activations on ``obs``, one (M, width) array per hidden layer."""
    return np.split(blue_hidden(model, obs, seed_index), np.cumsum(model.cfg.hidden)[:-1], 1)


def decodability_grid(
    model: MADDPG,
    cfg: core.EnvConfig,
    traj: Mapping[str, np.ndarray],
    alphas: Sequence[float] = ALPHA_GRID,
    context: bool = False,
) -> np.ndarray:
    """Probe v2's raw out-of-fold R² (S, layers, len(alphas)) of red's offset from each
    of blue's hidden layers, per trained seed and ridge penalty (:func:`cv_r2`);
    ``context``: with red's slots (6–7) of blue's observations set to 0. NaN for a seed
    that never saw red."""
    s = np.asarray(traj["red_pos"]).shape[0]
    out = np.full((s, len(model.cfg.hidden), len(alphas)), np.nan)
    for i in range(s):
        obs, target, episode = in_sight_rows(cfg, traj, i)
        if not len(obs):
            continue
        if context:
            obs[:, core.stacked_red_slots(cfg)] = 0.0
        for k, h in enumerate(hidden_layers(model, obs, i)):
            out[i, k] = cv_r2(h, target, episode, alphas)
    return out


def red_decodability_per_seed(
    model: MADDPG,
    cfg: core.EnvConfig,
    traj: Mapping[str, np.ndarray],
    alpha: Sequence[float] = PROBE_ALPHA,
) -> dict[str, np.ndarray]:
    """Per trained seed (S,), probe v2's red decodability on in-sight states
    (docs/spec.md §4.15, docs/results/probe_v2.md), each in [0, 1]:

    * ``red_decodability_h<k>``: D of hidden layer k (1-based), the out-of-fold R² of red's
      true offset (red − blue) from that layer floored at 0, ridge penalty ``alpha[k-1]``;
    * ``red_decodability``: the larger of the layers' D (red in either layer);
    * ``red_decodability_context``: the same with red's slots (6–7) of blue's observations
      set to 0, i.e. what blue's activations reveal about red from the rest of its
      observation alone; equal to ``red_decodability`` for a blue whose red-slot weights
      are 0.
    """
    grid = tuple(sorted(set(alpha)))
    pick = [grid.index(a) for a in alpha]

    def per_layer(context: bool) -> np.ndarray:
        r2 = decodability_grid(model, cfg, traj, grid, context)
        return bounded(np.stack([r2[:, k, j] for k, j in enumerate(pick)], 1))

    sighted, context = per_layer(False), per_layer(True)
    out = {f"red_decodability_h{k + 1}": sighted[:, k] for k in range(sighted.shape[1])}
    out["red_decodability"] = sighted.max(1)
    out["red_decodability_context"] = context.max(1)
    return out


def red_decodability_v1_per_seed(
    model: MADDPG, cfg: core.EnvConfig, traj: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Probe v1 per trained seed (S,): even episodes fit, odd ones test, h1 and h2
    concatenated (:func:`red_decodability_v1`); for the validation's comparison only."""
    s = np.asarray(traj["red_pos"]).shape[0]
    out = np.full(s, np.nan)
    for i in range(s):
        obs, target, episode = in_sight_rows(cfg, traj, i)
        if len(obs):
            out[i] = red_decodability_v1(blue_hidden(model, obs, i), target, episode % 2 == 0)
    return out


def settings() -> dict[str, Any]:
    """Probe v2's settings as metrics.json records them (``decodability_probe``)."""
    return {
        "version": PROBE_VERSION,
        "alpha": list(PROBE_ALPHA),
        "folds": FOLDS,
        "sd_floor": SD_FLOOR,
    }


def scale_red_slots(model: MADDPG, factor: float, slots: Sequence[int] | None = None) -> MADDPG:
    """A copy of ``model`` whose blue's first-layer weights on red's slots (``slots``;
    default: the default environment's, 6–7) are multiplied by ``factor`` (the
    validation's "red slots doubled", docs/results/probe_v2.md)."""
    slots = core.red_slots(core.EnvConfig()) if slots is None else list(slots)
    out = copy.deepcopy(model)
    blue = out.n_agents - 1
    with torch.no_grad():
        w = out.actor.weights[0]
        w[blue :: out.n_agents, slots] *= factor
    return out


# ------------------------------------------------------------------ red-slot weight norm


def red_slot_norms(
    first_layer: np.ndarray | torch.Tensor,
    n_seeds: int,
    n_agents: int,
    blue: int,
    slots: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per trained seed, how strongly blue's actor reads red's position: the Frobenius
    norm of blue's first-layer weights on red's observation slots (6–7) and, for scale,
    on all its other input slots (docs/spec.md §4.16). ``first_layer`` is the stacked
    actor's first weight tensor (S·n_agents, in, out), member = seed · n_agents + agent;
    ``blue`` is blue's agent index. The weights act on the BatchNorm-normalised input."""
    w = first_layer.detach().cpu().double().numpy() if torch.is_tensor(first_layer) else first_layer
    w = np.asarray(w, np.float64)
    blue_w = w.reshape(n_seeds, n_agents, *w.shape[1:])[:, blue]
    red = np.zeros(blue_w.shape[1], dtype=bool)
    red[core.red_slots(core.EnvConfig()) if slots is None else list(slots)] = True
    return (
        np.sqrt((blue_w[:, red, :] ** 2).sum(axis=(1, 2))),
        np.sqrt((blue_w[:, ~red, :] ** 2).sum(axis=(1, 2))),
    )


def model_red_slot_norms(
    model: MADDPG, cfg: core.EnvConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`red_slot_norms` of a loaded model (blue = its last agent) on the red slots
    of ``cfg`` (default: the default environment's)."""
    slots = core.stacked_red_slots(cfg or core.EnvConfig())
    w = model.actor.weights[0]
    return red_slot_norms(w, model.n_seeds, model.n_agents, model.n_agents - 1, slots)


# ------------------------------------------------------------------ recomputation


def recompute(run_dir: str | Path) -> dict[str, np.ndarray]:
    """Per-seed trapped steps, red decodability (both variants) and red/other-slot weight
    norms of an evaluated run, recomputed from its ``eval/trajectories.npz`` and saved
    weights alone: equal to its ``metrics.json`` values up to the float32 rounding of the
    exported positions (the weight norms and trapped steps exactly)."""
    lm = rundir.load_model(run_dir)
    traj = rundir.read_trajectories(run_dir, required=True)
    red, other = model_red_slot_norms(lm.model, lm.config.env)
    return {
        "trapped_steps": metrics.trapped_steps(traj["trapped"]),
        **red_decodability_per_seed(lm.model, lm.config.env, traj),
        "red_slot_norm": red,
        "other_slot_norm": other,
    }
