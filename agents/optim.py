"""Adam for stacked networks, with a step count per member and member-masked steps.

Every parameter tensor of a stack has a leading member axis (seeds × agents). A plain
step updates every member exactly as ``torch.optim.Adam(foreach=True)`` would (the same
operations, so the same numbers); :meth:`StackedAdam.step` with a ``members`` mask
updates only those members (their moments, step counts and parameters), as if each
member had its own optimiser. The published SOO code took such separate steps on blue's
actor only (docs/spec.md §3.11).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch


class StackedAdam:
    """Adam (Kingma & Ba) over parameters shaped (members, ...), bias-corrected per member."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params: list[torch.Tensor] = list(params)
        if not self.params:
            raise ValueError("StackedAdam needs at least one parameter")
        self.members = self.params[0].shape[0]
        if any(p.shape[0] != self.members for p in self.params):
            raise ValueError("every parameter must have the same leading member axis")
        self.lr, self.betas, self.eps = lr, betas, eps
        self.steps = torch.zeros(self.members, dtype=torch.long)
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []

    def _moments(self) -> None:
        """Zero moments on the parameters' current device (created at first use, so that
        moving the networks after building the optimiser is fine)."""
        if not self.exp_avg or self.exp_avg[0].device != self.params[0].device:
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], members: torch.Tensor | None = None) -> None:
        """One Adam step with ``grads`` (one per parameter); only the ``members`` (a bool
        mask over the member axis) when given."""
        self._moments()
        if members is None and bool((self.steps == self.steps[0]).all()):
            self._step_all(list(grads))
        else:
            mask = torch.ones(self.members, dtype=torch.bool) if members is None else members
            self._step_members(list(grads), mask.to("cpu"))

    def _step_all(self, grads: list[torch.Tensor]) -> None:
        """Every member, same step count: torch's foreach Adam, operation for operation."""
        beta1, beta2 = self.betas
        self.steps += 1
        t = float(self.steps[0])
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        n = len(self.params)
        step_size = [(self.lr / (1 - beta1**t)) * -1] * n
        bias_correction2_sqrt = [(1 - beta2**t) ** 0.5] * n
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom, step_size)

    def _step_members(self, grads: list[torch.Tensor], mask: torch.Tensor) -> None:
        """Only the masked members, each with its own bias correction."""
        beta1, beta2 = self.betas
        idx = mask.nonzero().flatten()
        if idx.numel() == 0:
            return
        self.steps[idx] += 1
        t = self.steps[idx].double()
        step_size = (-self.lr / (1 - beta1**t)).float()
        bc2_sqrt = ((1 - beta2**t) ** 0.5).float()
        dev_idx = idx.to(self.params[0].device)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True):
            shape = (-1,) + (1,) * (p.dim() - 1)
            gi = g[dev_idx]
            mi = m[dev_idx].lerp_(gi, 1 - beta1)
            vi = v[dev_idx].mul_(beta2).addcmul_(gi, gi, value=1 - beta2)
            denom = vi.sqrt().div_(bc2_sqrt.to(p.device).view(shape)).add_(self.eps)
            p[dev_idx] = p[dev_idx] + step_size.to(p.device).view(shape) * mi / denom
            m[dev_idx] = mi
            v[dev_idx] = vi

    def state_dict(self) -> dict[str, Any]:
        """Step counts and moments (plus the hyper-parameters, for reference)."""
        self._moments()
        return {
            "steps": self.steps.clone(),
            "exp_avg": [m.clone() for m in self.exp_avg],
            "exp_avg_sq": [v.clone() for v in self.exp_avg_sq],
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, or the state of a ``torch.optim.Adam`` over the same
        parameters (checkpoints written before this class existed)."""
        if "state" in state and "param_groups" in state:  # torch.optim.Adam
            per_param = [state["state"][i] for i in range(len(self.params))]
            step = int(float(per_param[0]["step"]))
            self.steps = torch.full((self.members,), step, dtype=torch.long)
            moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in per_param]
        else:
            self.steps = state["steps"].clone().long().cpu()
            moments = list(zip(state["exp_avg"], state["exp_avg_sq"], strict=True))
        self._moments()
        for m, v, (m_saved, v_saved) in zip(self.exp_avg, self.exp_avg_sq, moments, strict=True):
            m.copy_(m_saved)
            v.copy_(v_saved)
