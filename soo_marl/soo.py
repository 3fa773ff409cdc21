"""Self-Other Overlap (SPEC §3) as pure torch functions.

The SOO fine-tuning compares blue's actor activations on a *self* observation (red out of
sight: slots 6–7 exactly 0) with those on an *other* observation (the same vector with a
fictitious red nearby and the trap flag cleared). These functions build the other
observation and the losses; the trainer decides which networks and rows they see.

Shapes: observations are (..., 10); activations (..., rows, F) — e.g. (members, rows, 128)
for a stack of actors, or (rows, 128) for one; losses reduce the rows axis, so a stacked
input gives one loss per member.
"""

from __future__ import annotations

import math

import torch

from soo_marl.envs import core

#: Radius R_soo of the fictitious red offset in the other observation (SPEC §3).
SOO_RADIUS = 0.125
#: ε of the SOO value log(MSE + ε) (SPEC §3).
SOO_EPS = 1e-25


def self_mask(obs_blue: torch.Tensor) -> torch.Tensor:
    """(...,) bool: blue observations (..., 10) with red out of sight (slots 6–7 exactly 0),
    i.e. the rows usable as self observations."""
    return (obs_blue[..., core.BLUE_RED_SLOTS] == 0).all(dim=-1)


def other_observation(
    obs_self: torch.Tensor,
    generator: torch.Generator | None = None,
    radius: float = SOO_RADIUS,
) -> torch.Tensor:
    """The other observation of SPEC §3: a copy of ``obs_self`` (..., 10) with red's slots
    6–7 set to ρ(cos φ, sin φ), ρ ~ U[0, radius], φ ~ U[0, 2π), and the trap slots 8–9 set
    to 0; nothing else changes.

    ρ and φ come from one ``torch.rand`` call on the tensor's device with ``generator``
    (which must live on that device), so the result is deterministic given the generator.
    """
    u = torch.rand(
        (*obs_self.shape[:-1], 2),
        generator=generator,
        device=obs_self.device,
        dtype=obs_self.dtype,
    )
    rho = u[..., 0] * radius
    phi = u[..., 1] * (2.0 * math.pi)
    out = obs_self.clone()
    out[..., core.BLUE_RED_SLOTS] = torch.stack((rho * torch.cos(phi), rho * torch.sin(phi)), -1)
    out[..., core.BLUE_TRAP_SLOTS] = 0
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
    h_self: torch.Tensor, h_other: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Differentiable SOO loss: the mean over rows of :func:`soo_mse`.

    ``h`` is (rows, F) → scalar, or (..., rows, F) → (...) (one loss per stacked member).
    ``mask`` (..., rows) restricts the mean to some rows (e.g. the out-of-sight ones).
    """
    return _masked_row_mean(soo_mse(h_self, h_other), mask)


def anchor_loss(
    action: torch.Tensor, action_pre: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Anchor loss of SPEC §3: MSE between the fine-tuned actor's outputs and the frozen
    pre-trained actor's on the same observations (``action_pre`` is detached).

    ``action`` is (rows, A) → scalar, or (..., rows, A) → (...); ``mask`` as in
    :func:`soo_loss`.
    """
    per_row = (action - action_pre.detach()).pow(2).mean(dim=-1)
    return _masked_row_mean(per_row, mask)


#: Which activations the SOO loss compares (a config choice; SPEC §3 default "h1h2").
SOO_LAYERS = ("h1h2", "h2", "action")


def blue_activations(model, obs_blue: torch.Tensor, layers: str = "h1h2") -> torch.Tensor:
    """Blue actors' activations (eval mode: running BatchNorm statistics) on (S, N, 10)
    observations: both hidden layers concatenated (``h1h2``, 128 values), the last hidden
    layer (``h2``) or the action (``action``). Returns (S, N, F), differentiable.

    ``model`` is a :class:`soo_marl.agents.maddpg.MADDPG` whose last agent is blue.
    """
    if layers not in SOO_LAYERS:
        raise ValueError(f"unknown SOO layers {layers!r}; allowed: {', '.join(SOO_LAYERS)}")
    s, n = obs_blue.shape[:2]
    joint = obs_blue.new_zeros(s, n, model.joint_obs_dim)
    joint[..., model.joint_obs_dim - obs_blue.shape[-1] :] = obs_blue
    actions, _, hidden = model.actor_forward(joint, train=False)
    if layers == "action":
        out = actions
    elif layers == "h2":
        out = hidden[-1]
    else:
        out = concat_hidden(hidden)
    return out.view(s, model.n_agents, n, out.shape[-1])[:, -1]
