"""Self-Other Overlap (docs/spec.md §3.3–§3.5) as pure torch functions.

The SOO fine-tuning compares blue's actor activations on a *self* observation (red out of
sight: slots 6–7 exactly 0) with those on an *other* observation (the same vector with a
fictitious red nearby and the trap flag cleared). These functions build the other
observation and the losses; the trainer decides which networks and rows they see.

Shapes: observations are (..., 10), or (..., 12) where blue observes red's relative
velocity (slots 10–11, ``EnvConfig.blue_sees_velocity``, docs/spec.md §1.6; the functions
tell the two layouts apart by the width); activations (..., rows, F) — e.g. (members,
rows, 128) for a stack of actors, or (rows, 128) for one; losses reduce the rows axis, so a
stacked input gives one loss per member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from soo_marl.envs import core

#: ε of the SOO value log(MSE + ε) (docs/spec.md §3.4).
SOO_EPS = 1e-25
#: Which rows of a batch serve as self observations: every out-of-sight row, or only those
#: before the trap (trap flag 0) (docs/spec.md §3.3).
SOO_ROWS = ("all", "pre-trap")
#: What the SOO loss minimises per row: the MSE of the activations, or the paper's
#: log(MSE + ε) (docs/spec.md §3.4).
SOO_DISTANCES = ("mse", "log")

#: What the *other* observation is (docs/spec.md §3.13): "red", the fictitious red of §3.3
#: on out-of-sight rows; "sham-flag", the same rows with the duplicated trap-flag slot 9
#: flipped (an input change with no self/other content: the sham control); "role-swap",
#: on rows with red in sight, blue's view as if it stood where red stands.
SOO_OTHERS = ("red", "sham-flag", "role-swap")
#: The duplicated trap-flag slot the sham flips (slot 8 keeps the flag).
SHAM_SLOT = core.BLUE_TRAP_SLOTS.stop - 1

Generators = torch.Generator | Sequence[torch.Generator] | None


def has_velocity_slots(obs_blue: torch.Tensor, history: int = core.EnvConfig.history) -> bool:
    """Whether blue observations (..., history · w) carry red's relative velocity (slots
    10–11 of each frame, ``core.BLUE_RED_VELOCITY_SLOTS``): frames of w = 12 slots instead
    of 10 (docs/spec.md §1.6)."""
    return obs_blue.shape[-1] // history == core.BLUE_RED_VELOCITY_SLOTS.stop


def frames(obs_blue: torch.Tensor, history: int = core.EnvConfig.history) -> torch.Tensor:
    """Stacked blue observations (..., history · w) as their frames (..., history, w),
    oldest first (``EnvConfig.history``, docs/spec.md §1.6); a view."""
    return obs_blue.unflatten(-1, (history, obs_blue.shape[-1] // history))


def real_frames(f: torch.Tensor) -> torch.Tensor:
    """(..., k, 1) bool: which frames of :func:`frames` are observations, not the zeros
    that stand for the steps before the episode's start."""
    return (f != 0).any(dim=-1, keepdim=True)


def self_mask(
    obs_blue: torch.Tensor, rows: str = "all", history: int = core.EnvConfig.history
) -> torch.Tensor:
    """(...,) bool: blue observations (..., 10; ``history`` frames of that, §1.6) usable as
    self observations: red out of sight (slots 6–7 exactly 0) in every frame and, with
    ``rows="pre-trap"``, the trap flag (slots 8–9) still 0."""
    if rows not in SOO_ROWS:
        raise ValueError(f"unknown SOO rows {rows!r}; allowed: {', '.join(SOO_ROWS)}")
    f = frames(obs_blue, history)
    mask = (f[..., core.BLUE_RED_SLOTS] == 0).all(dim=-1).all(dim=-1)
    if rows == "pre-trap":
        mask = mask & (f[..., core.BLUE_TRAP_SLOTS] == 0).all(dim=-1).all(dim=-1)
    return mask


def in_sight_mask(
    obs_blue: torch.Tensor, rows: str = "all", history: int = core.EnvConfig.history
) -> torch.Tensor:
    """(...,) bool: blue observations (..., 10; ``history`` frames of that) with red in
    sight (slots 6–7 not both 0) in the newest frame, before the trap only with
    ``rows="pre-trap"``: the rows of role-swap SOO."""
    if rows not in SOO_ROWS:
        raise ValueError(f"unknown SOO rows {rows!r}; allowed: {', '.join(SOO_ROWS)}")
    f = frames(obs_blue, history)[..., -1, :]
    mask = (f[..., core.BLUE_RED_SLOTS] != 0).any(dim=-1)
    if rows == "pre-trap":
        mask = mask & (f[..., core.BLUE_TRAP_SLOTS] == 0).all(dim=-1)
    return mask


def sham_observation(obs_self: torch.Tensor, history: int = core.EnvConfig.history) -> torch.Tensor:
    """The sham control's other observation (docs/spec.md §3.13): a copy of ``obs_self``
    (..., 10; ``history`` frames of that) with the duplicated trap-flag slot 9 flipped
    (x → 1 − x) in every frame since the episode's start and nothing else changed — an
    input change as large as a flag, carrying nothing about red or blue."""
    out = obs_self.clone()
    f = frames(out, history)
    flipped = 1.0 - f[..., SHAM_SLOT]
    if history > 1:
        flipped = torch.where(real_frames(f)[..., 0], flipped, f[..., SHAM_SLOT])
    f[..., SHAM_SLOT] = flipped
    return out


def role_swap_observation(
    obs_blue: torch.Tensor, history: int = core.EnvConfig.history
) -> torch.Tensor:
    """Blue's observation (..., 10; ``history`` frames of that, each swapped) as if blue
    stood where red stands (docs/spec.md §3.13):
    with d = red − blue (slots 6–7), the goal and landmark offsets (slots 0–5) become
    offset − d and red's slots become −d (where blue would see itself); the trap flags
    stay. With red's relative velocity observed (slots 10–11), it is negated too: from
    red's place, blue moves at blue's velocity − red's. Only meaningful on rows with red
    in sight (d is 0 otherwise)."""
    f = frames(obs_blue, history)
    d = f[..., core.BLUE_RED_SLOTS]
    out = obs_blue.clone()
    g = frames(out, history)
    g[..., :6] = f[..., :6] - torch.cat([d, d, d], dim=-1)
    g[..., core.BLUE_RED_SLOTS] = -d
    if has_velocity_slots(obs_blue, history):
        vel = core.BLUE_RED_VELOCITY_SLOTS
        g[..., vel] = -f[..., vel]
    return out


def _uniforms(shape: tuple[int, ...], generator: Generators, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) draws of ``shape`` on ``like``'s device: from one generator, or, for a list
    of generators, one per slice of the leading axis (so each seed of a stack has its own
    stream). A list of CPU generators draws on the CPU, so the draws do not depend on the
    device the networks run on."""
    dtype = like.dtype
    if generator is None or isinstance(generator, torch.Generator):
        device = like.device if generator is None else generator.device
        return torch.rand(shape, generator=generator, device=device, dtype=dtype).to(like.device)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a leading axis of {shape[0]}")
    draws = [torch.rand(shape[1:], generator=g, device=g.device, dtype=dtype) for g in generator]
    return torch.stack(draws).to(like.device)


def other_observation(
    obs_self: torch.Tensor,
    generator: Generators = None,
    radius: float = core.EnvConfig.sight_radius,
    keep_trap_flag: bool = False,
    history: int = core.EnvConfig.history,
) -> torch.Tensor:
    """The other observation of docs/spec.md §3.3: a copy of ``obs_self`` (..., 10) with red's
    slots 6–7 set to ρ(cos φ, sin φ), ρ ~ U[0, radius], φ ~ U[0, 2π), and the trap slots
    8–9 set to 0 (kept as they are with ``keep_trap_flag``); with red's relative velocity
    observed, its slots 10–11 are 0 (the fictitious red moves with blue; they are 0 on
    every self row already); nothing else changes.
    ``radius`` is blue's sight radius (``EnvConfig.blue_sight``, docs/spec.md §1.12): the
    fictitious red is one blue would see.

    ρ and φ come from ``torch.rand`` with ``generator`` (on the generator's device), or
    from one generator per slice of the leading axis when a list is given, so the result
    is deterministic given the generator(s).

    With ``history`` > 1 (stacked frames, §1.6) the same fictitious red (one draw per row)
    is at the same offset in every frame since the episode's start, with the trap flags
    and velocity slots of every such frame as above; the all-zero frames before the
    episode's start stay 0.
    """
    u = _uniforms((*obs_self.shape[:-1], 2), generator, obs_self)
    rho = u[..., 0] * radius
    phi = u[..., 1] * (2.0 * math.pi)
    out = obs_self.clone()
    f = frames(out, history)
    red = torch.stack((rho * torch.cos(phi), rho * torch.sin(phi)), -1)[..., None, :]
    if history > 1:
        red = red * real_frames(f)
    f[..., core.BLUE_RED_SLOTS] = red
    if not keep_trap_flag:
        f[..., core.BLUE_TRAP_SLOTS] = 0
    if has_velocity_slots(obs_self, history):
        f[..., core.BLUE_RED_VELOCITY_SLOTS] = 0
    return out


def concat_hidden(hidden: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The SOO activations: the hidden layers' post-activation outputs joined on the last
    axis (two 64-wide layers → 128 values)."""
    return torch.cat(tuple(hidden), dim=-1)


def soo_mse(h_self: torch.Tensor, h_other: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared difference of two activation tensors (..., F) → (...)."""
    return (h_self - h_other).pow(2).mean(dim=-1)


def soo_value(h_self: torch.Tensor, h_other: torch.Tensor, eps: float = SOO_EPS) -> torch.Tensor:
    """The paper's per-row SOO value log(MSE + eps); lower means more self-other overlap."""
    return torch.log(soo_mse(h_self, h_other) + eps)


def _masked_row_mean(per_row: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last (rows) axis, only over ``mask`` rows when given; 0 (not NaN)
    where a mask selects no row."""
    if mask is None:
        return per_row.mean(dim=-1)
    m = mask.to(per_row.dtype)
    return (per_row * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)


def soo_loss(
    h_self: torch.Tensor,
    h_other: torch.Tensor,
    mask: torch.Tensor | None = None,
    distance: str = "mse",
) -> torch.Tensor:
    """Differentiable SOO loss: the mean over rows of :func:`soo_mse` (``distance="mse"``)
    or of the SOO value log(MSE + ε) (``"log"``, the paper's distance).

    ``h`` is (rows, F) → scalar, or (..., rows, F) → (...) (one loss per stacked member).
    ``mask`` (..., rows) restricts the mean to some rows (e.g. the out-of-sight ones).
    """
    if distance not in SOO_DISTANCES:
        raise ValueError(f"unknown SOO distance {distance!r}; allowed: {SOO_DISTANCES}")
    per_row = soo_mse(h_self, h_other) if distance == "mse" else soo_value(h_self, h_other)
    return _masked_row_mean(per_row, mask)


def anchor_loss(
    action: torch.Tensor, action_pre: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Anchor loss of docs/spec.md §3.5: MSE between the fine-tuned actor's outputs and the frozen
    pre-trained actor's on the same observations (``action_pre`` is detached).

    ``action`` is (rows, A) → scalar, or (..., rows, A) → (...); ``mask`` as in
    :func:`soo_loss`.
    """
    per_row = (action - action_pre.detach()).pow(2).mean(dim=-1)
    return _masked_row_mean(per_row, mask)


#: Which activations the SOO loss compares (a config choice; docs/spec.md §3.4, default "h1h2").
SOO_LAYERS = ("h1h2", "h2", "action")


def blue_activations(model, obs_blue: torch.Tensor, layers: str = "h1h2") -> torch.Tensor:
    """Blue actors' activations (eval mode: running BatchNorm statistics) on (S, N, 10)
    observations: both hidden layers concatenated (``h1h2``, 128 values), the last hidden
    layer (``h2``) or the action (``action``). Returns (S, N, F), differentiable.

    ``model`` is a :class:`soo_marl.agents.maddpg.MADDPG` whose last agent is blue.
    """
    if layers not in SOO_LAYERS:
        raise ValueError(f"unknown SOO layers {layers!r}; allowed: {', '.join(SOO_LAYERS)}")
    actions, hidden = model.agent_actor(obs_blue, model.n_agents - 1)
    if layers == "action":
        return actions
    if layers == "h2":
        return hidden[-1]
    return concat_hidden(hidden)
