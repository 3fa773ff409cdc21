"""The fast kernels compute the reference mathematics: forward and gradients agree with the
reference forms to float32 rounding, and a round of updates stays within rounding."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soo_marl.agents.maddpg import MADDPG, MADDPGConfig, compiled_method
from soo_marl.agents.networks import LeakyReLUFromOutput, NarrowLinear, StackedBatchNorm
from soo_marl.allocator import InsufficientMemory, check_memory, fmt_bytes, memory_available
from soo_marl.bench_learner import (
    _filled_buffer,
    bench_learner,
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


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_leaky_relu_from_output_gives_the_builtin_gradient_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 500, 64, generator=g)
    x[0, :10] = 0.0  # the kink: both take the negative side's slope there
    up = torch.randn(3, 500, 64, generator=g)
    for slope in (0.01, 0.0, 0.3):
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out = LeakyReLUFromOutput.apply(a, slope)
        ref = torch.nn.functional.leaky_relu(b, slope)
        assert torch.equal(out, ref)
        (ga,) = torch.autograd.grad((out * up).sum(), a)
        (gb,) = torch.autograd.grad((ref * up).sum(), b)
        assert torch.equal(ga, gb), slope


def _compile_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(2, 1024, 16, generator=g),
        "act": torch.rand(2, 1024, 4, generator=g) * 2 - 1,
        "rew": torch.randn(2, 1024, 2, generator=g),
        "next_obs": torch.randn(2, 1024, 16, generator=g),
    }


def test_compiled_losses_and_gradients_equal_the_fast_kernels_up_to_rounding():
    """kernels="compiled" runs the same losses through torch.compile: values, gradients and
    the BatchNorm statistics they update agree with the eager fast kernels to float32
    rounding (shapes as in training: batch 1,024)."""
    torch.manual_seed(0)
    m = MADDPG(MADDPGConfig(kernels="compiled"), [0, 1], [6, 10], [2, 2])
    batch = _compile_batch()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    for name, net, rtol in (("critic_losses", m.critic, 1e-4), ("actor_losses", m.actor, 2e-2)):
        results = []
        for fn in (getattr(m, name), lambda b, name=name: compiled_method(name)(m, b)):
            m.load_state_dict(start)
            out = fn(batch)
            loss = out[0] if isinstance(out, tuple) else out
            grads = torch.autograd.grad(loss.sum(), list(net.parameters()))
            results.append((loss.detach(), grads, net.norm.running_mean.clone()))
        (l_e, g_e, rm_e), (l_c, g_c, rm_c) = results
        assert torch.allclose(l_c, l_e, rtol=1e-5), name
        assert torch.allclose(rm_c, rm_e, atol=1e-6), name  # the BatchNorm update happened
        assert not torch.equal(rm_e, start[f"{name[:-7]}.norm.running_mean"])
        for a, b in zip(g_c, g_e, strict=True):
            # the actor's gradient passes through the critic's input BatchNorm of nearly
            # constant early actions, which amplifies rounding (the reference kernels
            # differ from float64 there by about 1e-3 of the largest component)
            assert (a - b).abs().max() <= rtol * b.abs().max(), name


def test_compiled_update_rounds_are_reproducible():
    """The same seeds and batches give bit-identical networks on a second compiled run."""
    states = []
    for _ in range(2):
        m = MADDPG(MADDPGConfig(kernels="compiled"), [0, 1], [6, 10], [2, 2])
        for k in range(3):
            m.update(_compile_batch(k))
        states.append(m.state_dict())
    fast = MADDPG(MADDPGConfig(kernels="fast"), [0, 1], [6, 10], [2, 2])
    for k in range(3):
        fast.update(_compile_batch(k))
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    moved = [k for k, v in fast.state_dict().items() if v.is_floating_point()]
    assert any(not torch.equal(states[0][k], fast.state_dict()[k]) for k in moved)


def test_compiled_kernels_without_a_cpp_compiler_fail_with_a_clear_error(tmp_path):
    """Where torch.compile cannot build its C++ kernels, the first update round says so
    and names the way out, instead of a long compiler traceback."""
    code = (
        "import torch, torch._inductor.config as c\n"
        "c.cpp.cxx = ('no-such-compiler-here',)\n"
        "c.force_disable_caches = True\n"
        "from soo_marl.agents.maddpg import MADDPG, MADDPGConfig\n"
        "m = MADDPG(MADDPGConfig(kernels='compiled'), [0], [6, 10], [2, 2])\n"
        "g = torch.Generator().manual_seed(0)\n"
        "b = {k: torch.randn(1, 64, d, generator=g) for k, d in "
        "(('obs', 16), ('act', 4), ('rew', 2), ('next_obs', 16))}\n"
        "try:\n"
        "    m.update(b)\n"
        "except ValueError as exc:\n"
        "    print('ValueError:', exc)\n"
    )
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ValueError: kernels='compiled': torch.compile could not build" in out.stdout
    assert "use kernels='fast'" in out.stdout


def test_compiled_kernels_need_a_non_negative_slope():
    with pytest.raises(ValueError, match="negative_slope"):
        MADDPGConfig(kernels="compiled", negative_slope=-0.1)
    with pytest.raises(ValueError, match="allowed: fast, compiled, reference"):
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
    assert res["stacked"]["2"] > 0 and res["reference"]["2"] > 0 and res["compiled"]["2"] > 0
    assert res["compile_s"]["2"] > 0
    assert np.isclose(
        res["efficiency_compiled"]["2"],
        res["compiled"]["2"] * res["flops_per_seed_update"] / 1e9 / res["peak"]["2"]["peak"],
    )
    assert 0.0 < res["profile"]["gemm"] < 1.0
    assert np.isclose(res["profile"]["gemm"] + res["profile"]["rest"], 1.0)
    peak = res["peak"]["2"]
    assert peak["peak_shape"][0] == 4 and peak["peak"] >= peak["round_products"] > 0
    # efficiency is the definition: achieved product GFLOP/s over the same run's peak
    achieved = res["stacked"]["2"] * res["flops_per_seed_update"] / 1e9
    assert np.isclose(res["efficiency"]["2"], achieved / peak["peak"])
    assert res["meta"]["cpu"] == cpu_model()


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_flop_count_matches_the_products_an_update_round_runs(kernels):
    """The documented FLOPs per seed-update are those torch's own counter sees in a round:
    exactly with the reference kernels; with the fast ones the one-column input gradients
    are broadcast products that the counter does not count as matrix products."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = MADDPGConfig(kernels=kernels)
    model = MADDPG(cfg, [0, 1, 2], [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [2, 2])
    buf = _filled_buffer(3, torch.device("cpu"))
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
