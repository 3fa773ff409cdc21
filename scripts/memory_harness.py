"""Peak memory of an S-seed learner with a full replay buffer (docs/performance.md).

A fresh process builds an S-seed MADDPG learner, fills its replay buffer to ``--capacity``
transitions per seed with random rows, runs ten update rounds and writes a checkpoint
holding the buffer; it prints the peak resident memory (VmHWM) after each phase.

Usage: ``python scripts/memory_harness.py --seeds 32 --out /tmp/memh``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.allocator import peak_rss_mb, tune_allocator
from soo_marl.envs import core
from soo_marl.rundir import atomic_torch_save


def main() -> None:
    """Run the phases and print their peak memory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--capacity", type=int, default=MADDPGConfig().buffer_size)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    tune_allocator()
    t0 = time.perf_counter()
    cfg = MADDPGConfig()
    s = args.seeds
    model = MADDPG(cfg, list(range(s)), [core.OBS_DIM_RED, core.OBS_DIM_BLUE], [2, 2])
    buf = StackedReplayBuffer(s, args.capacity, 16, 4, 2)
    g = torch.Generator().manual_seed(0)
    chunk = 10_000
    for _ in range(0, args.capacity, chunk):
        buf.add(
            torch.randn(s, chunk, 16, generator=g),
            torch.rand(s, chunk, 4, generator=g) * 2 - 1,
            torch.randn(s, chunk, 2, generator=g),
            torch.randn(s, chunk, 16, generator=g),
        )
    print(f"filled {s} × {args.capacity:,}: peak {peak_rss_mb():,.0f} MB")
    rngs = [np.random.default_rng(i) for i in range(s)]
    for _ in range(10):
        model.update(buf.sample(rngs, cfg.batch_size, True))
    print(f"10 update rounds: peak {peak_rss_mb():,.0f} MB")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(
        {"model": model.state_dict(), "buffer": buf.state_dict()}, args.out / "checkpoint.pt"
    )
    print(f"checkpoint: peak {peak_rss_mb():,.0f} MB ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
