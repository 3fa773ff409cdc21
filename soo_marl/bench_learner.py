"""Benchmark of one MADDPG update round, stacked over seeds vs a per-seed loop
(``soo-marl bench learner``)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.allocator import tune_allocator
from soo_marl.envs import core

#: Operators counted as matrix products in the profile share.
GEMM_OPS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "aten::matmul")


def _filled_buffer(seeds: int, device: torch.device) -> StackedReplayBuffer:
    buf = StackedReplayBuffer(seeds, 20_000, 16, 4, 2, device)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        buf.add(
            torch.randn(seeds, 1000, 16, generator=g).to(device),
            (torch.rand(seeds, 1000, 4, generator=g) * 2 - 1).to(device),
            torch.randn(seeds, 1000, 2, generator=g).to(device),
            torch.randn(seeds, 1000, 16, generator=g).to(device),
        )
    return buf


def _timed(fn: Callable[[], None], rounds: int, repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timed blocks of ``rounds`` calls."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(rounds):
            fn()
        sync()
        times.append((time.perf_counter() - t) / rounds)
    return float(np.median(times))


def round_fn(seeds: int, device: torch.device, kernels: str = "fast") -> Callable[[], None]:
    """One full update round (sampling included) of a fresh ``seeds``-seed learner."""
    cfg = MADDPGConfig(kernels=kernels)
    obs, act = [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [core.ACTION_DIM] * 2
    model = MADDPG(cfg, list(range(seeds)), obs, act).to(device)
    buf = _filled_buffer(seeds, device)
    rngs = [np.random.default_rng(i) for i in range(seeds)]
    return lambda: model.update(buf.sample(rngs, cfg.batch_size, True))


def gemm_share(fn: Callable[[], None], rounds: int = 10) -> dict[str, float]:
    """Share of the rounds' CPU time spent in matrix products (torch profiler, self time of
    the product operators plus what they call, over the total self time)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(rounds):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.cpu_time_total for e in events if e.key in GEMM_OPS)
    return {"gemm": gemm / total, "rest": 1.0 - gemm / total, "rounds": rounds}


def bench_learner(
    seed_counts: Sequence[int] | None = None,
    loop_seeds: int = 8,
    rounds: int = 10,
    repeats: int = 5,
    device: str = "cpu",
    profile: bool = True,
) -> dict:
    """Seed-updates/s of full update rounds (sampling, both agents' critic + actor,
    targets).

    ``stacked[S]``: S seeds in one stacked learner (default S = 1, 8; on CUDA also 64,
    256); ``reference[S]``: the same with ``kernels="reference"`` (the slower numerics of
    earlier results), measured in the same run; ``loop_8``: ``loop_seeds`` separate
    one-seed learners updated one after another; ``ratio`` = stacked[loop_seeds] / loop;
    ``profile``: the share of an 8-seed round's time in matrix products (CPU only).
    """
    tune_allocator()
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if seed_counts is None:
        seed_counts = (1, 8, 64, 256) if dev.type == "cuda" else (1, 8)
    stacked, reference = {}, {}
    for s in seed_counts:
        stacked[str(s)] = s / _timed(round_fn(s, dev), rounds, repeats, sync)
        reference[str(s)] = s / _timed(round_fn(s, dev, "reference"), rounds, repeats, sync)
    singles = [round_fn(1, dev) for _ in range(loop_seeds)]

    def loop() -> None:
        for f in singles:
            f()

    loop_rate = loop_seeds / _timed(loop, max(1, rounds // 2), repeats, sync)
    key = str(loop_seeds)
    if key not in stacked:
        stacked[key] = loop_seeds / _timed(round_fn(loop_seeds, dev), rounds, repeats, sync)
    result = {
        "stacked": stacked,
        "reference": reference,
        f"loop_{loop_seeds}": loop_rate,
        "ratio": stacked[key] / loop_rate,
    }
    if profile and dev.type == "cpu":
        result["profile"] = gemm_share(round_fn(loop_seeds, dev))
    result["meta"] = {
        "device": str(dev),
        "batch_size": MADDPGConfig().batch_size,
        "repeats": repeats,
        "rounds_per_repeat": rounds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
    }
    return result


def format_learner_report(result: dict) -> str:
    """Human-readable table of :func:`bench_learner` output."""
    lines = [
        f"MADDPG update rounds (batch {result['meta']['batch_size']}, {result['meta']['device']})"
    ]
    for s, v in result["stacked"].items():
        ref = result.get("reference", {}).get(s)
        extra = f"   (reference kernels: {ref:8.1f})" if ref else ""
        lines.append(f"  stacked S={s:>3}: {v:9.1f} seed-updates/s{extra}")
    loop_key = next(k for k in result if k.startswith("loop_"))
    lines.append(f"  per-seed loop ({loop_key[5:]} seeds): {result[loop_key]:9.1f} seed-updates/s")
    lines.append(f"  ratio stacked/loop: {result['ratio']:.2f}")
    if "profile" in result:
        lines.append(
            f"  share of an 8-seed round in matrix products: {100 * result['profile']['gemm']:.0f}%"
        )
    return "\n".join(lines)
