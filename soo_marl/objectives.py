"""Parts the training loop is given: extra actor-loss terms and work around update rounds.

The loop in :mod:`soo_marl.train` knows plain MADDPG only. Anything else — the SOO and
anchor terms of fine-tuning, a separate SOO step before each round, keeping red frozen —
is an :class:`Objective` handed to it. Each method has a do-nothing default, so a part
implements only what it uses; the loop calls them in this order at every update round:

1. :meth:`Objective.before_round` with the live step at which the round fires;
2. the MADDPG round, whose actor objective adds every part's :meth:`Objective.actor_loss`;
3. :meth:`Objective.after_round`, then :meth:`Objective.logs` is read for logging.

:meth:`Objective.state_dict` goes into the run's checkpoint, so a resumed run continues
exactly.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from soo_marl import soo
from soo_marl.envs import core

if TYPE_CHECKING:
    from soo_marl.agents.maddpg import MADDPG

#: A sampled replay batch: (S, N, ·) tensors ``obs``, ``act``, ``rew``, ``next_obs``.
Batch = dict[str, torch.Tensor]


class LiveStep(NamedTuple):
    """The environment step at which an update round fires (all seeds and envs)."""

    #: (S, E, Σ obs) joint observations the actions were chosen on, on the model's device.
    obs: torch.Tensor
    #: (S, E, Σ act) exploration noise added to the deterministic actions.
    noise: np.ndarray
    #: (S, E, Σ act) executed actions: deterministic action plus noise, clipped to [-1, 1].
    action: np.ndarray
    #: Update rounds done so far (by this run), e.g. to rotate over the E environments.
    round_index: int


class Objective:
    """Base of the parts a training run is given; every method does nothing by default."""

    def actor_loss(self, model: MADDPG, batch: Batch) -> torch.Tensor | None:
        """An extra per-member actor loss (S·n,) added to the MADDPG actor objective on
        ``batch``, or None."""
        return None

    def before_round(self, model: MADDPG, live: LiveStep) -> None:
        """Work done before the MADDPG round (e.g. a separate optimiser step)."""

    def after_round(self, model: MADDPG) -> None:
        """Work done after the MADDPG round and the soft target update."""

    def logs(self) -> dict[str, torch.Tensor]:
        """Per-seed scalars (S,) of the last round, keyed by their TensorBoard tag."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume this part exactly (top-level keys)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: MADDPG) -> None:
        """Restore from a checkpoint of a run whose (already loaded) networks are ``model``."""


def blue_only(model: MADDPG, per_seed: torch.Tensor) -> torch.Tensor:
    """A per-member loss (S·n,) that is ``per_seed`` (S,) for blue (the last agent) and 0
    for the other agents."""
    out = torch.zeros(model.n_seeds, model.n_agents, device=per_seed.device)
    out[:, -1] = per_seed
    return out.view(-1)


def to_numpy(logs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Logged tensors as numpy arrays (for the run's history)."""
    return {k: v.detach().cpu().numpy() for k, v in logs.items()}


# --------------------------------------------------------------------------- fine-tuning parts


class FrozenParent(Objective):
    """The frozen pre-trained copy of the model, taken when fine-tuning starts; the anchor
    and ``freeze_red`` compare with it. Its actor is saved as ``pre_actor``."""

    def __init__(self) -> None:
        self.model: MADDPG | None = None

    def capture(self, model: MADDPG) -> None:
        """Take the copy (call right after the parent's networks are loaded)."""
        self.model = copy.deepcopy(model).requires_grad_(False)

    def state_dict(self) -> dict[str, Any]:
        """The frozen actor."""
        return {"pre_actor": self.reference.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: MADDPG) -> None:
        """A copy of the resumed ``model`` with the saved frozen actor."""
        self.capture(model)
        self.reference.actor.load_state_dict(state["pre_actor"])

    @property
    def reference(self) -> MADDPG:
        """The frozen model (error if not captured yet)."""
        if self.model is None:
            raise RuntimeError("the frozen parent is not captured yet")
        return self.model


class _DrawsFictitiousReds(Objective):
    """A part with one generator of fictitious red offsets per seed (saved under
    ``state_key``) and per-seed logs of its last round."""

    state_key = "gen"
    generators: list[torch.Generator]
    _logs: dict[str, torch.Tensor]

    def logs(self) -> dict[str, torch.Tensor]:
        """The scalars of the last round, per seed."""
        return self._logs

    def state_dict(self) -> dict[str, Any]:
        """The generators of the fictitious red offsets."""
        return {self.state_key: [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict[str, Any], model: MADDPG) -> None:
        """Restore the generators."""
        for g, saved in zip(self.generators, state[self.state_key], strict=True):
            g.set_state(saved)


class SooTerm(_DrawsFictitiousReds):
    """``weight`` × SOO loss on blue's actor over the self-observation rows of each
    sampled batch (docs/spec.md §3.3–§3.4); also logs blue's SOO value on those rows.

    ``rows`` ("all" out-of-sight rows, or "pre-trap" ones only), ``keep_trap_flag`` (the
    other observation keeps slots 8–9), ``distance`` ("mse" or "log") and ``layers``
    ("h1h2", "h2", "action") choose the variant. Each seed draws its fictitious red
    offsets from its own generator, saved in the checkpoint as ``soo_gen``. Logged: SOO
    loss, SOO value and the fraction of rows used as self observations.
    """

    state_key = "soo_gen"

    def __init__(
        self,
        weight: float,
        layers: str,
        radius: float,
        generators: list[torch.Generator],
        rows: str = "all",
        keep_trap_flag: bool = False,
        distance: str = "mse",
        other: str = "red",
        history: int = core.EnvConfig.history,
    ) -> None:
        if other not in soo.SOO_OTHERS:
            raise ValueError(f"unknown SOO other {other!r}; allowed: {', '.join(soo.SOO_OTHERS)}")
        self.weight, self.layers, self.radius = weight, layers, radius
        self.rows, self.keep_trap_flag, self.distance = rows, keep_trap_flag, distance
        self.other, self.history = other, history  # history: stacked frames (§1.6)
        self.generators = generators
        self._logs: dict[str, torch.Tensor] = {}

    def _rows_and_other(self, obs_blue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows the loss uses and their other observations (docs/spec.md §3.3, §3.13)."""
        k = self.history
        if self.other == "role-swap":
            swapped = soo.role_swap_observation(obs_blue, k)
            return soo.in_sight_mask(obs_blue, self.rows, k), swapped
        mask = soo.self_mask(obs_blue, self.rows, k)
        if self.other == "sham-flag":
            return mask, soo.sham_observation(obs_blue, k)
        gens, radius = self.generators, self.radius
        return mask, soo.other_observation(obs_blue, gens, radius, self.keep_trap_flag, k)

    def actor_loss(self, model: MADDPG, batch: Batch) -> torch.Tensor:
        """W·SOO for blue members, 0 for red."""
        obs_blue = batch["obs"][..., -model.obs_dims[-1] :]
        mask, other = self._rows_and_other(obs_blue)
        h_self = soo.blue_activations(model, obs_blue, self.layers)
        h_other = soo.blue_activations(model, other, self.layers)
        loss = soo.soo_loss(h_self, h_other, mask, self.distance)
        with torch.no_grad():  # mean SOO value over the rows used (NaN for a seed with none)
            value = soo.soo_value(h_self, h_other)
            rows = mask.sum(1)
            value = torch.where(mask, value, torch.zeros_like(value)).sum(1) / rows.clamp_min(1)
            value = torch.where(rows > 0, value, torch.full_like(value, float("nan")))
        self._logs = {
            "soo/loss": loss.detach(),
            "soo/value": value,
            "soo/out_of_sight_fraction": mask.float().mean(1),
        }
        return blue_only(model, self.weight * loss)


class AnchorTerm(Objective):
    """``weight`` × MSE between blue's actions and the frozen parent's on the out-of-sight
    rows of each sampled batch (docs/spec.md §3.5): keeps the fine-tuned blue capable."""

    def __init__(
        self, weight: float, parent: FrozenParent, history: int = core.EnvConfig.history
    ) -> None:
        self.weight, self.parent, self.history = weight, parent, history
        self._logs: dict[str, torch.Tensor] = {}

    def actor_loss(self, model: MADDPG, batch: Batch) -> torch.Tensor:
        """A·anchor for blue members, 0 for red."""
        obs_blue = batch["obs"][..., -model.obs_dims[-1] :]
        mask = soo.self_mask(obs_blue, history=self.history)
        act = soo.blue_activations(model, obs_blue, "action")
        with torch.no_grad():
            act_pre = soo.blue_activations(self.parent.reference, obs_blue, "action")
        loss = soo.anchor_loss(act, act_pre, mask)
        self._logs = {"soo/anchor_loss": loss.detach()}
        return blue_only(model, self.weight * loss)

    def logs(self) -> dict[str, torch.Tensor]:
        """The anchor loss per seed."""
        return self._logs


class FreezeRed(Objective):
    """Keeps red's actor (and its target and input statistics) as in the frozen parent:
    after every round red's members are put back, so only blue changes."""

    def __init__(self, parent: FrozenParent) -> None:
        self.parent = parent

    @torch.no_grad()
    def after_round(self, model: MADDPG) -> None:
        """Copy every agent but blue (the last) back from the frozen parent."""
        ref, s, n = self.parent.reference, model.n_seeds, model.n_agents
        for net, frozen in ((model.actor, ref.actor), (model.target_actor, ref.target_actor)):
            tensors = list(net.parameters()) + [net.norm.running_mean, net.norm.running_var]
            saved = list(frozen.parameters()) + [
                frozen.norm.running_mean,
                frozen.norm.running_var,
            ]
            for p, q in zip(tensors, saved, strict=True):
                p.view(s, n, *p.shape[1:])[:, :-1] = q.view(s, n, *q.shape[1:])[:, :-1]


class BlindRed(Objective):
    """Surgical blinding (docs/spec.md §3.13): blue's first-layer actor weights on every
    slot carrying red (``slots``, ``core.stacked_red_slots`` of the run's environment:
    red's offset 6–7, and its relative velocity 10–11 where blue observes it, in every
    frame with ``EnvConfig.history`` > 1) are set to zero
    when fine-tuning starts and put back to zero after every round, in the actor and its
    target, so blue's actions never depend on red."""

    def __init__(self, slots: list[int] | None = None) -> None:
        self.slots = core.red_slots(core.EnvConfig()) if slots is None else list(slots)

    @torch.no_grad()
    def apply(self, model: MADDPG) -> None:
        """Zero blue's (the last agent's) first-layer weights on red's slots."""
        s, n = model.n_seeds, model.n_agents
        for net in (model.actor, model.target_actor):
            w = net.weights[0]
            w.view(s, n, *w.shape[1:])[:, -1, self.slots] = 0.0

    def after_round(self, model: MADDPG) -> None:
        """Back to zero after the round's Adam step and soft target update."""
        self.apply(model)


class AuthorsSooStep(_DrawsFictitiousReds):
    """The published code's form of SOO fine-tuning (docs/spec.md §3.11), before every round.

    On the single live observation of the step at which the round fires (environment
    ``round_index mod E`` of each seed), if red is out of blue's sight there: action-level
    SOO = log(MSE(a, μ(o_other)) + ε), where a = clip(μ(o) + noise) is blue's executed,
    noisy action recomputed with gradients, and DPMSE = log(MSE(μ_pre(o), a) + ε) against
    the frozen parent; one separate clipped Adam step of ``soo_weight``·SOO +
    ``anchor_weight``·DPMSE on blue's actor only, for the seeds whose red is out of sight.
    Logged: whether it fired per seed, its action-SOO and DPMSE values (NaN where not).
    """

    state_key = "authors_gen"

    def __init__(
        self,
        soo_weight: float,
        anchor_weight: float,
        radius: float,
        parent: FrozenParent,
        generators: list[torch.Generator],
        history: int = core.EnvConfig.history,
    ) -> None:
        self.soo_weight, self.anchor_weight, self.radius = soo_weight, anchor_weight, radius
        self.history = history  # stacked frames (EnvConfig.history, §1.6)
        self.parent, self.generators = parent, generators
        self.fired = 0  # steps taken (seed × round), for the tests and the logs
        self._logs: dict[str, torch.Tensor] = {}

    def before_round(self, model: MADDPG, live: LiveStep) -> None:
        """One masked Adam step on blue's actor (no step where red is in sight)."""
        s, n = model.n_seeds, model.n_agents
        k = live.round_index % live.obs.shape[1]
        obs_blue = live.obs[:, k, -model.obs_dims[-1] :][:, None]  # (S, 1, 10)
        fire = soo.self_mask(obs_blue, history=self.history)[:, 0]  # (S,)
        act_dim = model.act_dims[-1]
        noise = torch.as_tensor(live.noise[:, k, -act_dim:], dtype=obs_blue.dtype)
        noise = noise.to(obs_blue.device)[:, None]
        gens, k = self.generators, self.history
        other = soo.other_observation(obs_blue, gens, self.radius, history=k)
        self._logs = {"soo/authors_fired": fire.float()}
        if not bool(fire.any()):
            return
        executed = (soo.blue_activations(model, obs_blue, "action") + noise).clamp(-1.0, 1.0)
        on_other = soo.blue_activations(model, other, "action")
        with torch.no_grad():
            pre = soo.blue_activations(self.parent.reference, obs_blue, "action")
        soo_value = torch.log((executed - on_other).pow(2).mean(dim=(1, 2)) + soo.SOO_EPS)
        dpmse = torch.log((pre - executed).pow(2).mean(dim=(1, 2)) + soo.SOO_EPS)
        loss = (self.soo_weight * soo_value + self.anchor_weight * dpmse) * fire
        members = torch.zeros(s, n, dtype=torch.bool)
        members[:, -1] = fire.cpu()
        model._step(model.actor, model.actor_opt, blue_only(model, loss), members.view(-1))
        self.fired += int(fire.sum())
        nan = torch.full_like(soo_value, float("nan"))
        self._logs["soo/authors_value"] = torch.where(fire, soo_value, nan).detach()
        self._logs["soo/authors_dpmse"] = torch.where(fire, dpmse, nan).detach()
