"""Benchmark of one MADDPG update round, stacked over seeds vs a per-seed loop."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.envs import core


def _filled_buffer(seeds: int, cfg: MADDPGConfig, device: torch.device) -> StackedReplayBuffer:
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


def bench_learner(
    seed_counts: Sequence[int] = (1, 8),
    loop_seeds: int = 8,
    rounds: int = 10,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """Seed-updates/s of full update rounds (both agents' critic + actor + targets).

    ``stacked[S]``: S seeds in one stacked learner; ``loop_8``: ``loop_seeds`` separate
    one-seed learners updated one after another; ``ratio`` = stacked[loop_seeds] / loop.
    """
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cfg = MADDPGConfig()
    obs, act = [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [core.ACTION_DIM] * 2

    def stacked_fn(s: int) -> Callable[[], None]:
        model = MADDPG(cfg, list(range(s)), obs, act).to(dev)
        buf = _filled_buffer(s, cfg, dev)
        rngs = [np.random.default_rng(i) for i in range(s)]
        return lambda: model.update(buf.sample(rngs, cfg.batch_size, True))

    stacked = {}
    for s in seed_counts:
        stacked[str(s)] = s / _timed(stacked_fn(s), rounds, repeats, sync)
    singles = [stacked_fn(1) for _ in range(loop_seeds)]

    def loop() -> None:
        for f in singles:
            f()

    loop_rate = loop_seeds / _timed(loop, max(1, rounds // 2), repeats, sync)
    key = str(loop_seeds)
    if key not in stacked:
        stacked[key] = loop_seeds / _timed(stacked_fn(loop_seeds), rounds, repeats, sync)
    return {
        "stacked": stacked,
        f"loop_{loop_seeds}": loop_rate,
        "ratio": stacked[key] / loop_rate,
        "meta": {
            "device": str(dev),
            "batch_size": cfg.batch_size,
            "repeats": repeats,
            "rounds_per_repeat": rounds,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        },
    }


def format_learner_report(result: dict) -> str:
    """Human-readable table of :func:`bench_learner` output."""
    lines = [
        f"MADDPG update rounds (batch {result['meta']['batch_size']}, {result['meta']['device']})"
    ]
    for s, v in result["stacked"].items():
        lines.append(f"  stacked S={s:>3}: {v:9.1f} seed-updates/s")
    loop_key = next(k for k in result if k.startswith("loop_"))
    lines.append(f"  per-seed loop ({loop_key[5:]} seeds): {result[loop_key]:9.1f} seed-updates/s")
    lines.append(f"  ratio stacked/loop: {result['ratio']:.2f}")
    return "\n".join(lines)
