"""The fast kernels compute the reference mathematics: forward and gradients agree with the
reference forms to float32 rounding, and a round of updates stays within rounding."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.agents.networks import NarrowLinear, StackedBatchNorm
from soo_marl.allocator import InsufficientMemory, check_memory, fmt_bytes, memory_available
from soo_marl.bench_learner import (
    bench_learner,
    filled_buffer,
    flops_per_seed_update,
    round_products,
)
from soo_marl.envs import core
from soo_marl.provenance import cpu_model


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


# A fresh process mallocs 8 MB and reports whether tuning applied and how many blocks glibc
# mapped for it (mallinfo2's hblks: blocks served by mmap rather than the heap).
_MALLOC_PROBE = """
import ctypes, ctypes.util
from soo_marl.allocator import tune_allocator
names = ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost").split()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in names]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = tune_allocator()
before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(block)
print(applied, mapped, tune_allocator())
"""


def _malloc_probe(default_malloc: bool) -> list[str]:
    env = {**os.environ, "SOO_MARL_DEFAULT_MALLOC": "1" if default_malloc else "0"}
    out = subprocess.run(
        [sys.executable, "-c", _MALLOC_PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_the_removed_compiled_kernels_are_refused_with_a_line_that_says_so():
    with pytest.raises(ValueError, match="kernels='compiled' was removed on 2026-12-07"):
        MADDPGConfig(kernels="compiled")
    with pytest.raises(ValueError, match="allowed: fast, reference"):
        MADDPGConfig(kernels="fused")


def test_tuned_allocator_serves_an_8_mb_block_from_the_heap_instead_of_mmap():
    """Tuned (threshold 32 MB): an 8 MB block comes from the heap, so freeing it returns
    nothing to the system; glibc's defaults map such a block with mmap. The switch
    SOO_MARL_DEFAULT_MALLOC=1 leaves glibc as it is, and tuning applies once per process."""
    assert _malloc_probe(default_malloc=False) == ["True", "0", "True"]
    assert _malloc_probe(default_malloc=True) == ["False", "1", "False"]


def test_memory_check_names_the_memory_needed_and_available():
    found = memory_available()
    assert found is not None  # Linux: /proc/meminfo
    avail, source = found
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < avail <= total and "MemAvailable" in source
    check_memory(avail // 2, "half of it")  # fits: nothing raised
    with pytest.raises(InsufficientMemory) as err:
        check_memory(avail + 400 * 10**9, "the replay", "use fewer seeds")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("not enough memory: the replay need at least")
    assert fmt_bytes(avail + 400 * 10**9) in msg and f"but {fmt_bytes(avail)} is available" in msg
    assert msg.endswith("; use fewer seeds") and isinstance(err.value, ValueError)
    assert [fmt_bytes(x) for x in (304e9, 15_242.3e9, 2e9, 0.85e9, 1.216e6, 4.2e5)] == [
        "304.0 GB", "15,242.3 GB", "2.0 GB", "850 MB", "1.22 MB", "0.42 MB",
    ]  # fmt: skip


def test_bench_learner_keys_and_profile():
    res = bench_learner(seed_counts=(2,), loop_seeds=2, rounds=1, repeats=1)
    assert set(res) >= {"stacked", "reference", "loop_2", "ratio", "profile", "meta", "efficiency"}
    assert res["stacked"]["2"] > 0 and res["reference"]["2"] > 0
    assert 0.0 < res["profile"]["gemm"] < 1.0
    assert np.isclose(res["profile"]["gemm"] + res["profile"]["rest"], 1.0)
    peak = res["peak"]["2"]
    assert peak["peak_shape"][0] == 4 and peak["peak"] >= peak["round_products"] > 0
    # efficiency is the definition: achieved product GFLOP/s over the same run's peak
    achieved = res["stacked"]["2"] * res["flops_per_seed_update"] / 1e9
    assert np.isclose(res["efficiency"]["2"], achieved / peak["peak"])
    # and against the machine's limit: the best of a fixed list of shapes, this one's too
    limit = res["gemm_limit"]
    assert limit["threads"] == torch.get_num_threads() and limit["gflops"] > 0
    assert np.isclose(res["efficiency_vs_gemm_limit"]["2"], achieved / limit["gflops"])
    assert res["meta"]["cpu"] == cpu_model()


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_flop_count_matches_the_products_an_update_round_runs(kernels):
    """The documented FLOPs per seed-update are those torch's own counter sees in a round:
    exactly with the reference kernels; with the fast ones the one-column input gradients
    are broadcast products that the counter does not count as matrix products."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = MADDPGConfig(kernels=kernels)
    model = MADDPG(cfg, [0, 1, 2], [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [2, 2])
    buf = filled_buffer(3, torch.device("cpu"))
    batch = buf.sample([np.random.default_rng(i) for i in range(3)], cfg.batch_size, True)
    with FlopCounterMode(display=False) as counter:
        model.update(batch)
    counted = counter.get_total_flops()
    expected = 3 * flops_per_seed_update(cfg)
    assert flops_per_seed_update(cfg) == 205_520_896  # 0.206 GFLOP at batch 1,024
    if kernels == "reference":
        assert counted == expected
    else:
        assert 0 < expected - counted <= 3 * 2 * 2 * (2 * cfg.batch_size * 64)
    hidden = sum(2 * r * k * c for _, r, k, c in round_products(cfg, [6, 10], [2, 2]))
    assert hidden * 2 == flops_per_seed_update(cfg)  # two agents per seed
