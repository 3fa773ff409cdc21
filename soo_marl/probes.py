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

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from soo_marl import metrics, rundir
from soo_marl.agents.maddpg import MADDPG
from soo_marl.envs import core

#: Ridge penalty of the decodability probe, on standardised features (docs/spec.md §4.15).
RIDGE_ALPHA = 1.0
#: Rows of blue activations computed at once (bounds memory: 65,536 × 128 float32 = 32 MiB).
HIDDEN_CHUNK = 65_536


# ------------------------------------------------------------------ red decodability


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Closed-form ridge weights (F, K) of centred targets ``y`` (M, K) on ``x`` (M, F):
    (xᵀx + α I)⁻¹ xᵀy, in float64. The caller centres and scales (no intercept here)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)  # no copy when float64
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y)


def red_decodability(
    hidden: np.ndarray,
    target: np.ndarray,
    train_mask: np.ndarray,
    alpha: float = RIDGE_ALPHA,
) -> float:
    """Held-out R² of a ridge probe predicting ``target`` (M, K) from ``hidden`` (M, F).

    Rows where ``train_mask`` is true fit the probe, the others test it. Features are
    standardised with the training rows' mean and SD (a constant feature is only
    centred), the targets centred with the training mean; R² = 1 − Σ‖y − ŷ‖² /
    Σ‖y − ȳ‖² over the test rows, ȳ the test mean, summed over the K target components
    (docs/spec.md §4.15). NaN when either side has fewer than 2 rows or the test targets
    do not vary. 1 means the target is a linear function of the features; 0 or below,
    that the probe does no better than the test mean.
    """
    y = np.asarray(target, np.float64)
    y = y.reshape(len(y), -1)
    train = np.asarray(train_mask, bool)
    test = ~train
    if train.sum() < 2 or test.sum() < 2:
        return float("nan")
    x = np.asarray(hidden)
    # one float64 copy per side (not of all rows): activations of 100k+ rows are 100s of MB
    x_fit = x[train].astype(np.float64)
    mu, sd = x_fit.mean(0), x_fit.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    x_fit -= mu
    x_fit /= sd
    y_mu = y[train].mean(0)
    w = ridge_fit(x_fit, y[train] - y_mu, alpha)
    del x_fit
    x_test = x[test].astype(np.float64)
    x_test -= mu
    x_test /= sd
    pred = x_test @ w + y_mu
    total = ((y[test] - y[test].mean(0)) ** 2).sum()
    if total == 0:
        return float("nan")
    return float(1.0 - ((y[test] - pred) ** 2).sum() / total)


def decodability_train_mask(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed split of the decodability probe: (N, T+1) bool, true on the states of
    even-numbered episodes (training rows), false on odd ones (test rows)."""
    n = shape[0]
    return np.broadcast_to((np.arange(n) % 2 == 0)[:, None], shape).copy()


def blue_observations(cfg: core.EnvConfig, traj: Mapping[str, np.ndarray]) -> np.ndarray:
    """Blue's observations (..., N, T+1, 10), float32, rebuilt from trajectory arrays
    (positions, landmarks, goal index, trap and sight flags): what the environment
    showed blue at every state (docs/spec.md §1.6)."""
    red, blue = np.asarray(traj["red_pos"], np.float64), np.asarray(traj["blue_pos"], np.float64)
    lead = red.shape[:-1]  # (..., N, T+1)
    t1 = lead[-1]
    landmarks = np.asarray(traj["landmarks"], np.float64)
    state = core.State(
        pos=np.stack([red, blue], axis=-2).reshape(-1, 2, 2),
        vel=np.zeros((1, 2, 2)),
        landmarks=np.repeat(landmarks[..., None, :, :], t1, axis=-3).reshape(-1, 2, 2),
        goal_index=np.repeat(np.asarray(traj["goal_index"], np.int64)[..., None], t1, -1).ravel(),
        trapped=np.asarray(traj["trapped"], bool).ravel(),
        t=0,
    )
    _, obs_blue = core.observe(cfg, state, np.asarray(traj["red_visible"], bool).ravel())
    return obs_blue.reshape(*lead, core.OBS_DIM_BLUE)


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


def red_decodability_per_seed(
    model: MADDPG,
    cfg: core.EnvConfig,
    traj: Mapping[str, np.ndarray],
    alpha: float = RIDGE_ALPHA,
) -> dict[str, np.ndarray]:
    """Per trained seed (S,), the held-out R² of red's true offset (red − blue position)
    from blue's hidden activations on in-sight states (docs/spec.md §4.15):

    * ``red_decodability``: on blue's observations as the environment showed them;
    * ``red_decodability_context``: on the same states with red's slots (6–7) set to 0,
      i.e. what blue's activations reveal about red from the rest of its observation
      (landmarks, trap flag) alone; the gap to ``red_decodability`` is what reading red
      adds.

    Split: even episodes train, odd ones test (:func:`decodability_train_mask`); ridge
    penalty ``alpha`` on standardised features.
    """
    s = np.asarray(traj["red_pos"]).shape[0]
    out = {"red_decodability": np.full(s, np.nan), "red_decodability_context": np.full(s, np.nan)}
    for i in range(s):
        one = {k: np.asarray(traj[k])[i] for k in _TRAJ_KEYS}
        sight = one["red_visible"]
        if not sight.any():
            continue
        obs = blue_observations(cfg, one)[sight]
        target = (one["red_pos"] - one["blue_pos"])[sight]
        train = decodability_train_mask(sight.shape)[sight]
        out["red_decodability"][i] = red_decodability(
            blue_hidden(model, obs, i), target, train, alpha
        )
        obs[:, core.BLUE_RED_SLOTS] = 0.0
        out["red_decodability_context"][i] = red_decodability(
            blue_hidden(model, obs, i), target, train, alpha
        )
    return out


# ------------------------------------------------------------------ red-slot weight norm


def red_slot_norms(
    first_layer: np.ndarray | torch.Tensor, n_seeds: int, n_agents: int, blue: int
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
    red[core.BLUE_RED_SLOTS] = True
    return (
        np.sqrt((blue_w[:, red, :] ** 2).sum(axis=(1, 2))),
        np.sqrt((blue_w[:, ~red, :] ** 2).sum(axis=(1, 2))),
    )


def model_red_slot_norms(model: MADDPG) -> tuple[np.ndarray, np.ndarray]:
    """:func:`red_slot_norms` of a loaded model (blue = its last agent)."""
    return red_slot_norms(model.actor.weights[0], model.n_seeds, model.n_agents, model.n_agents - 1)


# ------------------------------------------------------------------ recomputation


def recompute(run_dir: str | Path) -> dict[str, np.ndarray]:
    """Per-seed trapped steps, red decodability (both variants) and red/other-slot weight
    norms of an evaluated run, recomputed from its ``eval/trajectories.npz`` and saved
    weights alone: equal to its ``metrics.json`` values up to the float32 rounding of the
    exported positions (the weight norms and trapped steps exactly)."""
    lm = rundir.load_model(run_dir)
    traj = rundir.read_trajectories(run_dir, required=True)
    red, other = model_red_slot_norms(lm.model)
    return {
        "trapped_steps": metrics.trapped_steps(traj["trapped"]),
        **red_decodability_per_seed(lm.model, lm.config.env, traj),
        "red_slot_norm": red,
        "other_slot_norm": other,
    }
