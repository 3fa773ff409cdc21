"""Networks stacked over members (seeds × agents), computed with batched matrix products.

A stack of M independent MLPs is held as weight tensors with a leading member axis; a
forward pass on inputs (M, N, in) is one ``torch.baddbmm`` per layer. Each member has its
own input BatchNorm statistics, so members never share anything but the kernel call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class StackedBatchNorm(nn.Module):
    """Non-affine input BatchNorm per member (running mean/var only), PyTorch semantics.

    Batch statistics come from two plain passes (mean, then the mean of squared
    deviations), several times faster on CPU than ``torch.var_mean`` over the batch axis;
    ``fast=False`` keeps ``var_mean`` (the reference numerics of results made before).
    """

    # Buffers (register_buffer); declared so that they type as tensors, not Tensor | Module.
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(
        self,
        members: int,
        features: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        fast: bool = True,
    ):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.fast = fast
        self.register_buffer("running_mean", torch.zeros(members, 1, features))
        self.register_buffer("running_var", torch.ones(members, 1, features))

    def forward(self, x: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """Normalise (M, N, F) inputs: batch statistics in training mode, running ones in eval."""
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        if self.fast:
            mean = x.mean(dim=1, keepdim=True)
            centred = x - mean
            var = (centred * centred).mean(dim=1, keepdim=True)
        else:
            var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
            centred = x - mean
        if update_stats:
            n = x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                unbiased = var * (n / max(n - 1, 1))
                self.running_var.lerp_(unbiased, self.momentum)
        return centred / torch.sqrt(var + self.eps)


#: Output widths up to this use :class:`NarrowLinear` on the fast path.
NARROW = 4


class NarrowLinear(torch.autograd.Function):
    """h @ w + b for a narrow output (M, N, K) @ (M, K, o ≤ 4) with the fast batched forms.

    A batched product with 1 or 2 output columns is slow on CPU; as (wᵀ hᵀ)ᵀ (forward),
    gᵀ h (weight gradient) and, for one column, a broadcast product (input gradient) it
    is several times faster, with the same mathematics.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        out = torch.bmm(w.transpose(1, 2), h.transpose(1, 2)).transpose(1, 2)
        return (out + b).contiguous()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w = ctx.saved_tensors
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if w.shape[2] == 1:
                grad_h = g * w.transpose(1, 2)
            else:
                grad_h = torch.bmm(g, w.transpose(1, 2))
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g.transpose(1, 2), h).transpose(1, 2)
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(dim=1, keepdim=True)
        return grad_h, grad_w, grad_b


class StackedMLP(nn.Module):
    """M independent MLPs: input BatchNorm → hidden layers with LeakyReLU → linear output.

    ``in_features[m]`` and ``out_features[m]`` may be smaller than the stack's width for
    some members (e.g. red's 6-dim observation in a 10-wide actor stack): their extra
    input columns and output rows are zero-initialised and, since padded inputs are zero,
    stay zero, so each member equals an unpadded network of its own size.
    """

    def __init__(
        self,
        members: int,
        in_width: int,
        hidden: Sequence[int],
        out_width: int,
        negative_slope: float,
        in_features: Sequence[int] | None = None,
        out_features: Sequence[int] | None = None,
        output_init: float | None = None,
        generators: Sequence[torch.Generator] | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.members = members
        self.negative_slope = negative_slope
        self.fast = fast
        self.norm = StackedBatchNorm(members, in_width, fast=fast)
        widths = [in_width, *hidden, out_width]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            self.weights.append(nn.Parameter(torch.zeros(members, a, b)))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, b)))
        in_features = list(in_features or [in_width] * members)
        out_features = list(out_features or [out_width] * members)
        with torch.no_grad():
            for m in range(members):
                g = generators[m] if generators is not None else None
                self._init_member(m, in_features[m], out_features[m], output_init, g)

    def _init_member(
        self, m: int, n_in: int, n_out: int, output_init: float | None, g: torch.Generator | None
    ) -> None:
        """PyTorch's default Linear init (U(±1/√fan_in)) on the member's real sub-block."""
        layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            rows = n_in if i == 0 else w.shape[1]
            cols = n_out if i == layers - 1 else w.shape[2]
            bound = 1.0 / math.sqrt(rows)
            w_bound = output_init if (i == layers - 1 and output_init is not None) else bound
            w[m, :rows, :cols] = (torch.rand(rows, cols, generator=g) * 2 - 1) * w_bound
            b[m, 0, :cols] = (torch.rand(cols, generator=g) * 2 - 1) * bound

    def forward(
        self, x: torch.Tensor, update_stats: bool = True, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Map (M, N, in_width) to (M, N, out_width); also return the hidden activations.

        With ``members`` (indices into the stack, eval mode only) only those members are
        computed, on inputs (len(members), N, in_width).
        """
        weights, biases = list(self.weights), list(self.biases)
        if members is None:
            h = self.norm(x, update_stats=update_stats)
        else:
            if self.training:
                raise ValueError("a subset of members is computed in eval mode only")
            mean = self.norm.running_mean.index_select(0, members)
            var = self.norm.running_var.index_select(0, members)
            h = (x - mean) / torch.sqrt(var + self.norm.eps)
            weights = [w.index_select(0, members) for w in weights]
            biases = [b.index_select(0, members) for b in biases]
        hidden = []
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if i < last:
                h = torch.baddbmm(b, h, w)
                # in place: baddbmm's backward does not need its output
                h = torch.nn.functional.leaky_relu(h, self.negative_slope, inplace=True)
                hidden.append(h)
            elif self.fast and w.shape[2] <= NARROW:
                h = NarrowLinear.apply(h, w, b)
            else:
                h = torch.baddbmm(b, h, w)
        return h, hidden


def member_generators(seeds: Sequence[int], tag: int) -> list[torch.Generator]:
    """One torch Generator per member, determined only by that member's seed and a tag."""
    gens = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(int(s) * 1_000_003 + tag)
        gens.append(g)
    return gens
