"""Replay buffers for S seeds held as one pre-allocated stack on the training device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class InsufficientMemory(ValueError):
    """A run that needs more memory than is available. A ValueError, so the command line
    prints it as one line, as it does any other input it refuses. Defined here, where the
    learner reserves its largest block; ``soo_marl.allocator`` checks memory ahead of it."""


def fmt_bytes(n_bytes: float) -> str:
    """Bytes for messages: "304.0 GB", "2.4 GB", "850 MB", "1.22 MB", "0.42 MB"."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:,.1f} GB"
    return f"{n_bytes / 1e6:.0f} MB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.3g} MB"


class StackedReplayBuffer:
    """One FIFO replay buffer per seed, stored as one (S, capacity, fields) tensor.

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
        widths = {"obs": obs_dim, "act": act_dim, "rew": n_agents, "next_obs": obs_dim}
        # one row per transition holds every field, so a sample is one gather; rows are
        # written before they are read, so the memory is left uninitialised (on the CPU it
        # only becomes resident as the buffer fills)
        try:
            self.storage = torch.empty(seeds, capacity, sum(widths.values()), device=self.device)
        except (RuntimeError, MemoryError):  # the system refused the reservation
            size = seeds * capacity * self.row_bytes(obs_dim, act_dim, n_agents)
            raise InsufficientMemory(
                f"cannot reserve {fmt_bytes(size)} ({self.device.type}) for the replay buffers of "
                f"{seeds:,} seeds × {capacity:,} transitions; use fewer seeds or a smaller "
                "--buffer-size"
            ) from None
        self.slices: dict[str, slice] = {}
        start = 0
        for k, d in widths.items():
            self.slices[k] = slice(start, start + d)
            start += d
        self.data = {k: self.storage[..., sl] for k, sl in self.slices.items()}
        self.ptr = 0
        self.filled = 0
        self.rew_sum = torch.zeros(seeds, n_agents, dtype=torch.float64, device=self.device)
        self.rew_sumsq = torch.zeros_like(self.rew_sum)

    def __len__(self) -> int:
        return self.filled

    @staticmethod
    def row_bytes(obs_dim: int, act_dim: int, n_agents: int) -> int:
        """Bytes one stored transition takes (observation, action, rewards, next
        observation in the default float type): 152 for the physical-deception task."""
        itemsize = torch.finfo(torch.get_default_dtype()).bits // 8
        return (2 * obs_dim + act_dim + n_agents) * itemsize

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
        self.storage[:, idx] = torch.cat((obs, act, rew, next_obs), dim=-1)
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
        idx += np.arange(self.seeds)[:, None] * self.capacity  # rows of the flat storage
        flat = torch.from_numpy(idx.reshape(-1)).to(self.device)
        rows = self.storage.view(self.seeds * self.capacity, -1).index_select(0, flat)
        rows = rows.view(self.seeds, batch_size, -1)
        batch = {k: rows[..., sl] for k, sl in self.slices.items()}
        if normalize_rewards:
            mean, std = self.reward_stats()
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            batch["rew"] = (batch["rew"] - mean[:, None]) / std[:, None]
        return batch

    def state_dict(self) -> dict:
        """The stored transitions (filled part only, on CPU) and counters.

        A full buffer on the CPU is saved as it is, without a copy (no second 1.2 GB in
        memory while an 8-seed checkpoint is written); otherwise the filled part is copied.
        """
        if self.filled == self.capacity and self.storage.device.type == "cpu":
            storage = self.storage
        else:
            storage = self.storage[:, : self.filled].cpu().clone()
        return {
            "storage": storage,
            "fields": {k: [sl.start, sl.stop] for k, sl in self.slices.items()},
            "ptr": self.ptr,
            "filled": self.filled,
            "rew_sum": self.rew_sum.cpu(),
            "rew_sumsq": self.rew_sumsq.cpu(),
        }

    @staticmethod
    def saved_field(state: dict, name: str) -> torch.Tensor:
        """One field ("obs", "act", "rew", "next_obs") of a saved buffer, (S, filled, d)."""
        if "storage" not in state:  # the per-field layout of older checkpoints
            return state["data"][name]
        start, stop = state["fields"][name]
        return state["storage"][:, : int(state["filled"]), start:stop]

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (either layout)."""
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        if self.filled > self.capacity:
            raise ValueError("saved buffer is larger than this buffer's capacity")
        for k, sl in self.slices.items():
            self.storage[:, : self.filled, sl] = self.saved_field(state, k).to(self.device)
        self.rew_sum = state["rew_sum"].to(self.device)
        self.rew_sumsq = state["rew_sumsq"].to(self.device)
