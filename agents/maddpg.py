"""MADDPG (Lowe et al. 2017) for S seeds × n agents at once, with stacked networks.

Member m = s · n + i is agent i of seed s. Actors are one stacked MLP over all members
(observations zero-padded to the widest agent); critics are another, and since every
agent's centralised critic sees the same joint input (all observations and actions), both
agents' critics are evaluated in one batched call. All losses are sums of per-member
losses, gradient clipping is per member, and Adam is element-wise, so no member's update
depends on another's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from soo_marl.agents.networks import StackedMLP, member_generators
from soo_marl.agents.optim import StackedAdam

#: The learner's numerics (``MADDPGConfig.kernels``).
KERNELS = ("fast", "reference")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class MADDPGConfig:
    """MADDPG hyper-parameters; defaults are the reference values of docs/spec.md §2.9."""

    hidden: tuple[int, ...] = field(
        default=(64, 64), metadata=_help("hidden layer widths of actors and critics")
    )
    negative_slope: float = field(default=0.01, metadata=_help("LeakyReLU negative slope"))
    actor_output_init: float = field(
        default=3e-3, metadata=_help("actor output-layer weights start in U(±this)")
    )
    lr_actor: float = field(default=0.01, metadata=_help("Adam learning rate of the actors"))
    lr_critic: float = field(default=0.01, metadata=_help("Adam learning rate of the critics"))
    grad_clip: float = field(
        default=0.5, metadata=_help("gradient-norm clip per network of each seed and agent")
    )
    gamma: float = field(default=0.95, metadata=_help("discount factor γ"))
    tau: float = field(
        default=0.01, metadata=_help("soft target-update rate τ (after every update round)")
    )
    buffer_size: int = field(
        default=1_000_000, metadata=_help("replay capacity per seed, in transitions")
    )
    batch_size: int = field(
        default=1024,
        metadata=_help(
            "transitions per sampled batch and seed; update rounds wait until the replay "
            "buffer holds a batch, so it may not exceed buffer_size, and a run in which no "
            "round would ever find a full batch is refused"
        ),
    )
    steps_per_update: int = field(
        default=100, metadata=_help("one update round per this many environment steps of a seed")
    )
    normalize_rewards: bool = field(
        default=True,
        metadata=_help("standardise sampled rewards by the buffer's per-agent mean and SD"),
    )
    action_reg: float = field(
        default=1e-3,
        metadata=_help("weight of the action regulariser mean(μ(o)²) in the actor loss"),
    )
    bn_momentum: float = field(
        default=0.1, metadata=_help("momentum of the input BatchNorm's running statistics")
    )
    ou_theta: float = field(default=0.15, metadata=_help("Ornstein-Uhlenbeck mean reversion θ"))
    ou_sigma: float = field(default=0.2, metadata=_help("Ornstein-Uhlenbeck σ"))
    noise_scale_start: float = field(
        default=0.3, metadata=_help("exploration-noise scale at episode 0")
    )
    noise_scale_end: float = field(
        default=0.0, metadata=_help("exploration-noise scale after the decay")
    )
    kernels: str = field(
        default="fast",
        metadata={
            "help": "fast: two-pass BatchNorm statistics and transposed output layers; "
            "reference: the var_mean/baddbmm forms (docs/spec.md §2.12)",
            "choices": KERNELS,
        },
    )
    noise_decay_episodes: int = field(
        default=25_000,
        metadata=_help(
            "episodes over which the noise scale falls linearly from start to end (a run "
            "shorter than this never reaches the end value)"
        ),
    )

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) <= 0:
            raise ValueError(f"hidden widths must be positive, got {list(self.hidden)}")
        for name in ("buffer_size", "batch_size", "steps_per_update"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"batch_size ({self.batch_size:,}) exceeds buffer_size ({self.buffer_size:,}): "
                "update rounds wait until the replay buffer holds a batch, which it never "
                "can, so the run would train without a single update"
            )
        for name in ("lr_actor", "lr_critic", "grad_clip", "tau", "bn_momentum"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.kernels == "compiled":
            raise ValueError(
                "kernels='compiled' was removed on 2026-12-07: it did not pay for itself in "
                "whole trainings (docs/spec.md §2.12); use 'fast', the same mathematics"
            )
        if self.kernels not in KERNELS:
            raise ValueError(f"unknown kernels {self.kernels!r}; allowed: {', '.join(KERNELS)}")
        if self.noise_decay_episodes < 0:
            raise ValueError(f"noise_decay_episodes must be ≥ 0, got {self.noise_decay_episodes}")

    @property
    def fast_forms(self) -> bool:
        """Whether the networks use the fast forms (the ``fast`` kernels)."""
        return self.kernels != "reference"

    def noise_scale(self, episode: np.ndarray | int) -> np.ndarray:
        """Exploration noise scale at (per-seed) episode index ``episode``."""
        remaining = np.maximum(0, self.noise_decay_episodes - np.asarray(episode))
        frac = remaining / max(self.noise_decay_episodes, 1)
        return self.noise_scale_end + (self.noise_scale_start - self.noise_scale_end) * frac


def clip_grads_per_member(
    grads: Sequence[torch.Tensor], max_norm: float, ordered: bool = True
) -> torch.Tensor:
    """Scale each member's gradients (leading axis) to total norm ≤ max_norm, in place.

    Returns the per-member norms before clipping. ``ordered`` sums the tensors' squared
    norms one tensor after another, the same order whatever the number of members, so a
    member's result does not depend on how many are stacked (docs/spec.md §7.1);
    ``ordered=False`` is torch's stacked reduction, whose summation order changes with the
    number of members (the reference kernels: results made before 2026-12-06).
    """
    if ordered:
        sq = grads[0].pow(2).flatten(1).sum(1)
        for g in grads[1:]:
            sq = sq + g.pow(2).flatten(1).sum(1)
    else:
        sq = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)
    norm = sq.sqrt()
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.view(-1, *([1] * (g.dim() - 1))))
    return norm


class MADDPG(nn.Module):
    """Actors, critics, targets and optimisers of S seeds × n agents.

    ``obs_dims``/``act_dims`` give each agent's sizes; the joint observation is the
    concatenation of the agents' observations in order, likewise the joint action.
    """

    # Buffers (register_buffer in _build_index_maps), typed as tensors.
    act_cols: torch.Tensor
    own_action: torch.Tensor
    act_mask: torch.Tensor

    def __init__(
        self,
        cfg: MADDPGConfig,
        seeds: Sequence[int],
        obs_dims: Sequence[int],
        act_dims: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.seeds = [int(s) for s in seeds]
        self.obs_dims, self.act_dims = list(obs_dims), list(act_dims)
        self.n_seeds, self.n_agents = len(self.seeds), len(self.obs_dims)
        s, n = self.n_seeds, self.n_agents
        self.members = s * n
        self.obs_width, self.act_width = max(self.obs_dims), max(self.act_dims)
        self.joint_obs_dim, self.joint_act_dim = sum(self.obs_dims), sum(self.act_dims)
        member_seeds = [seed * 16 + i for seed in self.seeds for i in range(n)]
        self.actor = StackedMLP(
            self.members,
            self.obs_width,
            cfg.hidden,
            self.act_width,
            in_features=self.obs_dims * s,
            out_features=self.act_dims * s,
            negative_slope=cfg.negative_slope,
            output_init=cfg.actor_output_init,
            generators=member_generators(member_seeds, tag=1),
            fast=cfg.fast_forms,
        )
        self.critic = StackedMLP(
            self.members,
            self.joint_obs_dim + self.joint_act_dim,
            cfg.hidden,
            1,
            negative_slope=cfg.negative_slope,
            generators=member_generators(member_seeds, tag=2),
            fast=cfg.fast_forms,
        )
        for bn in (self.actor.norm, self.critic.norm):
            bn.momentum = cfg.bn_momentum
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self._build_index_maps()
        self.to(device)
        self.actor_opt = StackedAdam(self.actor.parameters(), lr=cfg.lr_actor)
        self.critic_opt = StackedAdam(self.critic.parameters(), lr=cfg.lr_critic)
        self.update_rounds = 0

    # -- layout helpers ------------------------------------------------------------------
    def _build_index_maps(self) -> None:
        """Index maps between joint vectors and per-agent padded slots."""
        n, a = self.n_agents, self.act_width
        act_cols, act_owner = [], []
        for i, d in enumerate(self.act_dims):
            act_cols += [i * a + j for j in range(d)]
            act_owner += [i] * d
        own = torch.zeros(n, self.joint_act_dim, dtype=torch.bool)
        own[torch.tensor(act_owner), torch.arange(self.joint_act_dim)] = True
        act_mask = torch.zeros(n, a)
        for i, d in enumerate(self.act_dims):
            act_mask[i, :d] = 1.0
        self.register_buffer("act_cols", torch.tensor(act_cols), persistent=False)
        self.register_buffer("own_action", own[None, :, None, :], persistent=False)
        self.register_buffer("act_mask", act_mask[None, :, None, :], persistent=False)

    @torch.no_grad()
    def copy_targets(self) -> None:
        """Set the target networks to copies of the actors and critics."""
        self.target_actor.load_state_dict(self.actor.state_dict())
        self.target_critic.load_state_dict(self.critic.state_dict())

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.actor.weights[0].device

    def actor_input(self, joint_obs: torch.Tensor) -> torch.Tensor:
        """(S, N, joint_obs_dim) → stacked actor input (S·n, N, obs_width), zero-padded."""
        s, b = joint_obs.shape[0], joint_obs.shape[1]
        x = joint_obs.new_zeros(s, self.n_agents, b, self.obs_width)
        start = 0
        for i, d in enumerate(self.obs_dims):
            x[:, i, :, :d] = joint_obs[..., start : start + d]
            start += d
        return x.view(s * self.n_agents, b, self.obs_width)

    def joint_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Stacked actor output (S·n, N, act_width) → joint action (S, N, joint_act_dim)."""
        m, b, a = actions.shape
        x = actions.view(self.n_seeds, self.n_agents, b, a).transpose(1, 2)
        x = x.reshape(self.n_seeds, b, self.n_agents * a)
        if self.joint_act_dim == self.n_agents * a:  # no padded action columns to drop
            return x
        return x.index_select(-1, self.act_cols)

    def _critic_input(self, joint_obs: torch.Tensor, joint_act: torch.Tensor) -> torch.Tensor:
        """Same joint input for every agent's critic: (S, [n,] N, D) → (S·n, N, D)."""
        if joint_act.dim() == 4:
            joint_obs = joint_obs[:, None].expand(-1, self.n_agents, -1, -1)
        x = torch.cat([joint_obs, joint_act], dim=-1)
        if x.dim() == 3:
            x = x[:, None].expand(-1, self.n_agents, -1, -1)
        return x.reshape(self.members, x.shape[2], x.shape[3])

    # -- acting --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, joint_obs: torch.Tensor) -> torch.Tensor:
        """Deterministic joint action (S, N, joint_act_dim) from eval-mode actors."""
        self.actor.eval()
        out, _ = self.actor(self.actor_input(joint_obs))
        return self.joint_action(torch.tanh(out))

    def actor_forward(
        self, joint_obs: torch.Tensor, train: bool, update_stats: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Actions (S·n, N, act_width), pre-tanh outputs and hidden activations."""
        self.actor.train(train)
        pre, hidden = self.actor(self.actor_input(joint_obs), update_stats=update_stats)
        return torch.tanh(pre), pre, hidden

    def agent_actor(self, obs: torch.Tensor, agent: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One agent's actors only (eval mode) on its observations (S, N, obs_dims[agent]):
        actions (S, N, act_width) and hidden activations, differentiable."""
        self.actor.eval()
        members = torch.arange(self.n_seeds, device=obs.device) * self.n_agents + agent
        d = self.obs_dims[agent]
        if d < self.obs_width:
            obs = torch.nn.functional.pad(obs, (0, self.obs_width - d))
        pre, hidden = self.actor(obs, members=members)
        return torch.tanh(pre), hidden

    # -- learning ------------------------------------------------------------------------
    def critic_targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = r + γ Q'(o', μ'(o')) per member, (S·n, N, 1).

        Episodes end by truncation only, so targets always bootstrap (no done mask).
        Target networks use batch statistics, as the reference code's did in train mode.
        """
        with torch.no_grad():
            self.target_actor.train()
            self.target_critic.train()
            next_obs = batch["next_obs"]
            next_pre, _ = self.target_actor(self.actor_input(next_obs), update_stats=False)
            next_act = self.joint_action(torch.tanh(next_pre))
            q_next, _ = self.target_critic(
                self._critic_input(next_obs, next_act), update_stats=False
            )
            rew = batch["rew"].transpose(1, 2).reshape(self.members, -1, 1)
            return rew + self.cfg.gamma * q_next

    def critic_losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-member TD losses (S·n,) of the critics against their targets."""
        y = self.critic_targets(batch)
        self.critic.train()
        q, _ = self.critic(self._critic_input(batch["obs"], batch["act"]))
        return ((q - y) ** 2).mean(dim=(1, 2))

    def critic_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One Adam step of every critic on its TD loss; returns per-member losses."""
        loss = self.critic_losses(batch)
        self._step(self.critic, self.critic_opt, loss)
        return loss.detach()

    def actor_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member MADDPG actor losses (S·n,) and the pre-tanh outputs.

        Agent i's loss is −Q_i with its own action from its current actor and the other
        agents' current actions detached, plus the action regulariser.
        """
        n = self.n_agents
        actions, pre, _ = self.actor_forward(batch["obs"], train=True)
        joint = self.joint_action(actions)[:, None]  # (S, 1, N, A)
        mixed = torch.where(self.own_action, joint, joint.detach())  # (S, n, N, A)
        self.critic.train()
        q_pi, _ = self.critic(self._critic_input(batch["obs"], mixed), update_stats=False)
        own = actions.view(self.n_seeds, n, -1, self.act_width)
        reg = (own.pow(2) * self.act_mask).sum(dim=(2, 3)) / (
            own.shape[2] * self.act_mask.sum(dim=(2, 3))
        )
        return -q_pi.mean(dim=(1, 2)) + self.cfg.action_reg * reg.reshape(-1), pre

    def _step(
        self,
        net: nn.Module,
        opt: StackedAdam,
        loss: torch.Tensor,
        members: torch.Tensor | None = None,
    ) -> None:
        """Gradients of the summed per-member losses w.r.t. ``net`` only, clipped per
        member, then one Adam step (of the ``members`` only, when given)."""
        grads = torch.autograd.grad(loss.sum(), list(net.parameters()))
        clip_grads_per_member(grads, self.cfg.grad_clip, ordered=self.cfg.fast_forms)
        opt.step(grads, members)

    def update(
        self,
        batch: dict[str, torch.Tensor],
        actor_extra_loss: Callable[[MADDPG, dict], torch.Tensor | None] | None = None,
        actor_members: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One update round: critics, then actors, then soft target updates.

        ``batch`` holds (S, N, ·) tensors ``obs``, ``act``, ``rew`` (already normalised),
        ``next_obs``. ``actor_extra_loss(self, batch)`` may add a per-member (S·n,) loss
        to the actor objective (SOO fine-tuning uses it; None adds nothing).
        ``actor_members``, a (S·n,) bool mask, limits the actors' Adam step to those
        members (None: all; a scripted red's actor is left out, docs/spec.md §1.13).
        Returns per-member losses.
        """
        critic_loss = self.critic_step(batch)
        actor_loss, pre = self.actor_losses(batch)
        total = actor_loss
        extra = None
        if actor_extra_loss is not None:
            extra = actor_extra_loss(self, batch)
            if extra is not None:
                total = total + extra
        self._step(self.actor, self.actor_opt, total, actor_members)
        self.soft_update()
        self.update_rounds += 1
        out = {"critic": critic_loss, "actor": actor_loss.detach(), "pre": pre.detach()}
        if extra is not None:
            out["extra"] = extra.detach()
        return out

    @torch.no_grad()
    def soft_update(self) -> None:
        """θ' ← (1 − τ) θ' + τ θ for both target stacks."""
        for tgt, src in ((self.target_actor, self.actor), (self.target_critic, self.critic)):
            torch._foreach_lerp_(list(tgt.parameters()), list(src.parameters()), self.cfg.tau)

    # -- persistence ---------------------------------------------------------------------
    def full_state(self) -> dict:
        """Everything needed to resume: networks, targets, optimisers, counters."""
        return {
            "model": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "update_rounds": self.update_rounds,
        }

    def load_full_state(self, state: dict) -> None:
        """Restore what :meth:`full_state` saved."""
        self.load_state_dict(state["model"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.update_rounds = int(state["update_rounds"])
