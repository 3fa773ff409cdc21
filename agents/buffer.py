"""Replay buffers for S seeds held as one pre-allocated stack on the training device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class StackedReplayBuffer:
    """One FIFO replay buffer per seed, stored as (S, capacity, ...) tensors.

    All seeds add transitions in lock-step, but each samples its own indices from its own
    Generator, and keeps its own per-agent reward statistics (running sums in float64, so
    normalisation by the buffer's mean and std is O(1) per update round).
    """

    FIELDS = ("obs", "act", "rew", "next_obs")

    def __init__(
        self,
        seeds: int,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        n_agents: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.seeds, self.capacity, self.n_agents = seeds, capacity, n_agents
        self.device = torch.device(device)
        shapes = {"obs": obs_dim, "act": act_dim, "rew": n_agents, "next_obs": obs_dim}
        self.data = {
            k: torch.zeros(seeds, capacity, d, device=self.device) for k, d in shapes.items()
        }
        self.ptr = 0
        self.filled = 0
        self.rew_sum = torch.zeros(seeds, n_agents, dtype=torch.float64, device=self.device)
        self.rew_sumsq = torch.zeros_like(self.rew_sum)

    def __len__(self) -> int:
        return self.filled

    def add(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor):
        """Append E transitions per seed; each argument is (S, E, dim)."""
        e = obs.shape[1]
        if e > self.capacity:
            raise ValueError("more transitions per add than the buffer holds")
        idx = (torch.arange(e, device=self.device) + self.ptr) % self.capacity
        if self.filled + e > self.capacity:  # overwriting: remove the old rewards' share
            over = idx[self.capacity - self.filled :] if self.filled < self.capacity else idx
            old = self.data["rew"][:, over].double()
            self.rew_sum -= old.sum(1)
            self.rew_sumsq -= (old * old).sum(1)
        r64 = rew.double()
        self.rew_sum += r64.sum(1)
        self.rew_sumsq += (r64 * r64).sum(1)
        for k, v in (("obs", obs), ("act", act), ("rew", rew), ("next_obs", next_obs)):
            self.data[k][:, idx] = v
        self.ptr = (self.ptr + e) % self.capacity
        self.filled = min(self.filled + e, self.capacity)

    def reward_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per seed and agent: mean and standard deviation (ddof 0) of stored rewards."""
        mean = self.rew_sum / self.filled
        var = (self.rew_sumsq / self.filled - mean * mean).clamp_min(0.0)
        return mean.float(), var.sqrt().float()

    def sample(
        self, rngs: Sequence[np.random.Generator], batch_size: int, normalize_rewards: bool
    ) -> dict[str, torch.Tensor]:
        """A batch of (S, batch, ...) tensors; seed s draws its indices from ``rngs[s]``.

        With ``normalize_rewards`` rewards are standardised by the buffer's statistics;
        a reward with zero spread is only centred (the reference code divided by zero).
        """
        idx = np.stack([r.integers(0, self.filled, batch_size) for r in rngs])
        idx_t = torch.from_numpy(idx).to(self.device)
        rows = torch.arange(self.seeds, device=self.device)[:, None]
        batch = {k: v[rows, idx_t] for k, v in self.data.items()}
        if normalize_rewards:
            mean, std = self.reward_stats()
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            batch["rew"] = (batch["rew"] - mean[:, None]) / std[:, None]
        return batch

    def state_dict(self) -> dict:
        """The stored transitions (filled part only, on CPU) and counters."""
        return {
            "data": {k: v[:, : self.filled].cpu().clone() for k, v in self.data.items()},
            "ptr": self.ptr,
            "filled": self.filled,
            "rew_sum": self.rew_sum.cpu(),
            "rew_sumsq": self.rew_sumsq.cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        if self.filled > self.capacity:
            raise ValueError("saved buffer is larger than this buffer's capacity")
        for k, v in state["data"].items():
            self.data[k][:, : self.filled] = v.to(self.device)
        self.rew_sum = state["rew_sum"].to(self.device)
        self.rew_sumsq = state["rew_sumsq"].to(self.device)
