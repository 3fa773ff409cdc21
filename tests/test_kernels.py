"""The fast kernels compute the reference mathematics: forward and gradients agree with the
reference forms to float32 rounding, and a round of updates stays within rounding."""

import numpy as np
import torch

from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.agents.networks import NarrowLinear, StackedBatchNorm
from soo_marl.allocator import tune_allocator
from soo_marl.bench_learner import bench_learner


def test_narrow_linear_matches_baddbmm_with_gradients():
    g = torch.Generator().manual_seed(0)
    for width in (1, 2):
        h = torch.randn(6, 300, 64, generator=g, requires_grad=True)
        w = torch.randn(6, 64, width, generator=g, requires_grad=True)
        b = torch.randn(6, 1, width, generator=g, requires_grad=True)
        up = torch.randn(6, 300, width, generator=g)
        fast = NarrowLinear.apply(h, w, b)
        ref = torch.baddbmm(b, h, w)
        assert torch.allclose(fast, ref, atol=1e-5)
        grads_fast = torch.autograd.grad((fast * up).sum(), (h, w, b))
        grads_ref = torch.autograd.grad((ref * up).sum(), (h, w, b))
        for a, r in zip(grads_fast, grads_ref, strict=True):
            assert a.shape == r.shape and torch.allclose(a, r, atol=1e-4, rtol=1e-5)


def test_two_pass_batchnorm_matches_var_mean():
    x = torch.randn(4, 1024, 20) * 3 + 7  # an offset makes a naive E[x²] − E[x]² lose digits
    fast, ref = StackedBatchNorm(4, 20, fast=True), StackedBatchNorm(4, 20, fast=False)
    out_fast, out_ref = fast(x), ref(x)
    assert (out_fast - out_ref).abs().max() < 1e-5
    assert torch.allclose(fast.running_var, ref.running_var, rtol=1e-6)
    assert torch.allclose(fast.running_mean, ref.running_mean, rtol=1e-6)


def test_one_update_round_fast_vs_reference_within_rounding():
    g = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(2, 256, 16, generator=g),
        "act": torch.rand(2, 256, 4, generator=g) * 2 - 1,
        "rew": torch.randn(2, 256, 2, generator=g),
        "next_obs": torch.randn(2, 256, 16, generator=g),
    }
    models = {
        k: MADDPG(MADDPGConfig(kernels=k), [0, 1], [6, 10], [2, 2]) for k in ("fast", "reference")
    }
    before = {k: v.clone() for k, v in models["reference"].state_dict().items()}
    for m in models.values():
        m.update(batch)
    fast, ref = models["fast"].state_dict(), models["reference"].state_dict()
    for k in ref:
        moved = (ref[k] - before[k]).abs().max()
        assert (fast[k] - ref[k]).abs().max() <= 1e-3 * max(float(moved), 1e-6) + 1e-6, k


def test_allocator_tuning_is_idempotent():
    assert tune_allocator() == tune_allocator()


def test_bench_learner_keys_and_profile():
    res = bench_learner(seed_counts=(2,), loop_seeds=2, rounds=1, repeats=1)
    assert set(res) >= {"stacked", "reference", "loop_2", "ratio", "profile", "meta"}
    assert res["stacked"]["2"] > 0 and res["reference"]["2"] > 0
    assert 0.0 < res["profile"]["gemm"] < 1.0
    assert np.isclose(res["profile"]["gemm"] + res["profile"]["rest"], 1.0)
