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


def stack_agent_frames(frames: torch.Tensor, frame_dims: Sequence[int]) -> torch.Tensor:
    """Joint frames (..., k, Σ frame_dims), oldest first, as stacked joint observations
    (..., k · Σ frame_dims): per agent its k frames side by side (``core.stack_frames``)."""
    k = frames.shape[-2]
    parts, start = [], 0
    for w in frame_dims:
        parts.append(frames[..., start : start + w].reshape(*frames.shape[:-2], k * w))
        start += w
    return torch.cat(parts, dim=-1)


def gather_stacked(
    storage: torch.Tensor,
    ptr: int,
    filled: int,
    positions: np.ndarray,
    slices: dict[str, slice],
    history: int,
    stride: int,
    frame_dims: Sequence[int],
) -> dict[str, torch.Tensor]:
    """Stacked ``obs`` and ``next_obs`` (S, B, history · Σ frame_dims) and the stored
    ``rows`` (S, B, columns) of the transitions
    at ``positions`` (S, B; 0 = the oldest stored) of a single-frame ``storage`` (S, ≥
    filled, columns) whose rows were added ``stride`` at a time (docs/spec.md §2.4).

    The frame ``d`` steps back of the transition in row i is in row i − d·stride (its
    environment's earlier transition) and counts only if d ≤ its episode step (the
    ``step`` column); earlier frames are 0, so stacking never crosses an episode start.
    ``next_obs`` is ``obs`` shifted by one frame with the transition's next frame last.
    The rows ``positions`` need must be stored (:meth:`StackedReplayBuffer.sample` draws
    only such positions); a position whose frames are gone raises RuntimeError."""
    s_count, b = positions.shape
    back = np.arange(history) * stride  # (k,) rows back of d = 0 … k-1
    src = positions[:, :, None] - back  # (S, B, k) positions of the frames
    seed_rows = np.arange(s_count)[:, None, None] * storage.shape[1]
    rows = (ptr + np.maximum(src, 0)) % filled + seed_rows
    flat = torch.from_numpy(rows.reshape(-1)).to(storage.device)
    got = storage.reshape(-1, storage.shape[-1]).index_select(0, flat)
    got = got.view(s_count, b, history, -1)  # [..., d, :]: the frame d steps back
    step = got[:, :, 0, slices["step"].start]  # the transitions' episode steps
    d = torch.arange(history, device=storage.device, dtype=step.dtype)
    valid = d <= step[..., None]  # (S, B, k)
    gone = torch.from_numpy(src < 0).to(storage.device)
    if bool((valid & gone).any()):
        raise RuntimeError("a sampled transition's earlier frames are no longer stored")
    obs = (got[..., slices["obs"]] * valid[..., None]).flip(2)  # oldest first
    nxt = torch.cat([obs[:, :, 1:], got[:, :, :1, slices["next_obs"]]], dim=2)
    return {
        "obs": stack_agent_frames(obs, frame_dims),
        "next_obs": stack_agent_frames(nxt, frame_dims),
        "rows": got[:, :, 0],  # the transitions' own rows
    }


class StackedReplayBuffer:
    """One FIFO replay buffer per seed, stored as one (S, capacity, fields) tensor.

    All seeds add transitions in lock-step, but each samples its own indices from its own
    Generator, and keeps its own per-agent reward statistics (running sums in float64, so
    normalisation by the buffer's mean and std is O(1) per update round).

    With ``stack`` k > 1 (``EnvConfig.history``, docs/spec.md §1.6, §2.4) observations
    arrive stacked (k frames per agent) but only their newest frames are stored, with each
    transition's episode step (a ``step`` column); :meth:`sample` stacks them again
    (:func:`gather_stacked`). ``obs_dim`` is then the joint *frame* size and
    ``frame_dims`` each agent's frame size.
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
        stack: int = 1,
        frame_dims: Sequence[int] | None = None,
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.seeds, self.capacity, self.n_agents = seeds, capacity, n_agents
        self.device = torch.device(device)
        #: frames per stacked observation (``EnvConfig.history``)
        self.history, self.frame_dims = int(stack), list(frame_dims or [obs_dim])
        if self.history > 1 and sum(self.frame_dims) != obs_dim:
            raise ValueError(f"frame sizes {self.frame_dims} do not add up to {obs_dim}")
        #: rows added per :meth:`add` (environments per seed), fixed by the first add
        #: with history > 1: an environment's previous transition is ``stride`` rows back
        self.stride: int | None = None
        widths = {"obs": obs_dim, "act": act_dim, "rew": n_agents, "next_obs": obs_dim}
        if self.history > 1:
            widths["step"] = 1
        # one row per transition holds every field, so a sample is one gather; rows are
        # written before they are read, so the memory is left uninitialised (on the CPU it
        # only becomes resident as the buffer fills)
        try:
            self.storage = torch.empty(seeds, capacity, sum(widths.values()), device=self.device)
        except (RuntimeError, MemoryError):  # the system refused the reservation
            size = seeds * capacity * self.row_bytes(obs_dim, act_dim, n_agents, self.history)
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
    def row_bytes(obs_dim: int, act_dim: int, n_agents: int, stack: int = 1) -> int:
        """Bytes one stored transition takes (observation, action, rewards, next
        observation in the default float type): 152 for the physical-deception task.
        ``obs_dim`` is the joint frame size: with ``stack`` (``EnvConfig.history``) > 1
        single frames are stored, plus one column for the episode step (156 bytes)."""
        itemsize = torch.finfo(torch.get_default_dtype()).bits // 8
        return (2 * obs_dim + act_dim + n_agents + int(stack > 1)) * itemsize

    @staticmethod
    def sample_bytes(
        batch_size: int, obs_dim: int, act_dim: int, n_agents: int, history: int
    ) -> int:
        """Working memory per seed of one :meth:`sample` with ``history`` > 1: ``history``
        gathered rows per transition and the two stacked observations."""
        row = StackedReplayBuffer.row_bytes(obs_dim, act_dim, n_agents, history)
        itemsize = torch.finfo(torch.get_default_dtype()).bits // 8
        return batch_size * history * (row + 2 * obs_dim * itemsize)

    def _frames(self, obs: torch.Tensor) -> torch.Tensor:
        """The newest frame of each agent of stacked joint observations (history > 1)."""
        if obs.shape[-1] == sum(self.frame_dims):  # single frames already
            return obs
        cols: list[int] = []
        start = 0
        for w in self.frame_dims:
            start += self.history * w
            cols += range(start - w, start)
        return obs[..., cols]

    def _check_stride(self, e: int, step: int | None) -> None:
        """With history > 1: every add holds the same number of environments and says
        which step of their episodes it is."""
        if step is None:
            raise ValueError("a buffer with history > 1 needs each transition's episode step")
        if self.stride is None:
            self.stride = e
        elif e != self.stride:
            raise ValueError(f"history > 1 needs {self.stride} transitions per add, got {e}")

    def add(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        rew: torch.Tensor,
        next_obs: torch.Tensor,
        step: int | None = None,
    ) -> None:
        """Append E transitions per seed; each argument is (S, E, dim). With history > 1
        the observations may be stacked (their newest frames are stored) and ``step`` is
        the episode step of ``obs`` (0 at the episode's first observation)."""
        e = obs.shape[1]
        if e > self.capacity:
            raise ValueError("more transitions per add than the buffer holds")
        parts = [obs, act, rew, next_obs]
        if self.history > 1:
            self._check_stride(e, step)
            steps = obs.new_full((*obs.shape[:2], 1), float(step or 0))
            parts = [self._frames(obs), act, rew, self._frames(next_obs), steps]
        idx = (torch.arange(e, device=self.device) + self.ptr) % self.capacity
        if self.filled + e > self.capacity:  # overwriting: remove the old rewards' share
            over = idx[self.capacity - self.filled :] if self.filled < self.capacity else idx
            old = self.data["rew"][:, over].double()
            self.rew_sum -= old.sum(1)
            self.rew_sumsq -= (old * old).sum(1)
        r64 = rew.double()
        self.rew_sum += r64.sum(1)
        self.rew_sumsq += (r64 * r64).sum(1)
        self.storage[:, idx] = torch.cat(parts, dim=-1)
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
        if self.history > 1:
            return self._sample_stacked(rngs, batch_size, normalize_rewards)
        idx = np.stack([r.integers(0, self.filled, batch_size) for r in rngs])
        idx += np.arange(self.seeds)[:, None] * self.capacity  # rows of the flat storage
        flat = torch.from_numpy(idx.reshape(-1)).to(self.device)
        rows = self.storage.view(self.seeds * self.capacity, -1).index_select(0, flat)
        rows = rows.view(self.seeds, batch_size, -1)
        batch = {k: rows[..., sl] for k, sl in self.slices.items()}
        return self._normalized(batch, normalize_rewards)

    def _normalized(self, batch: dict[str, torch.Tensor], normalize: bool) -> dict:
        """``batch`` with its rewards standardised by the buffer's statistics."""
        if normalize:
            mean, std = self.reward_stats()
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            batch["rew"] = (batch["rew"] - mean[:, None]) / std[:, None]
        return batch

    def _sample_stacked(
        self, rngs: Sequence[np.random.Generator], batch_size: int, normalize_rewards: bool
    ) -> dict[str, torch.Tensor]:
        """:meth:`sample` with history k > 1: positions uniform over the stored
        transitions, except, once the buffer has wrapped, the oldest (k − 1)·E, whose
        earlier frames may be overwritten; observations stacked by :func:`gather_stacked`."""
        lo = (self.history - 1) * (self.stride or 0) if self.filled == self.capacity else 0
        if lo >= self.filled:
            raise ValueError("the buffer is too small for its history and environments")
        pos = np.stack([r.integers(lo, self.filled, batch_size) for r in rngs])
        stacked = gather_stacked(
            self.storage,
            self.ptr,
            self.filled,
            pos,
            self.slices,
            self.history,
            self.stride or 1,
            self.frame_dims,
        )
        row = stacked["rows"]
        batch = {
            "obs": stacked["obs"],
            "act": row[..., self.slices["act"]],
            "rew": row[..., self.slices["rew"]],
            "next_obs": stacked["next_obs"],
        }
        return self._normalized(batch, normalize_rewards)

    def state_dict(self) -> dict:
        """The stored transitions (filled part only, on CPU) and counters.

        A full buffer on the CPU is saved as it is, without a copy (no second 1.2 GB in
        memory while an 8-seed checkpoint is written); otherwise the filled part is copied.
        """
        if self.filled == self.capacity and self.storage.device.type == "cpu":
            storage = self.storage
        else:
            storage = self.storage[:, : self.filled].cpu().clone()
        out = {
            "storage": storage,
            "fields": {k: [sl.start, sl.stop] for k, sl in self.slices.items()},
            "ptr": self.ptr,
            "filled": self.filled,
            "rew_sum": self.rew_sum.cpu(),
            "rew_sumsq": self.rew_sumsq.cpu(),
        }
        if self.history > 1:  # only then, so default checkpoints keep their keys
            out["stride"] = self.stride
        return out

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
        if self.history > 1:
            if "step" not in state.get("fields", {}):
                raise ValueError("the saved buffer holds no episode steps (history 1)")
            self.stride = state.get("stride")
        elif "step" in state.get("fields", {}):
            raise ValueError("the saved buffer holds single frames of history > 1")
        for k, sl in self.slices.items():
            self.storage[:, : self.filled, sl] = self.saved_field(state, k).to(self.device)
        self.rew_sum = state["rew_sum"].to(self.device)
        self.rew_sumsq = state["rew_sumsq"].to(self.device)
