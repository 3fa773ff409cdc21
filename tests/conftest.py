"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest
import torch

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs import core
from soo_marl.train import train

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per test worker (and per process it starts): `-n 2` on 2 cores with
    # torch's default of one thread per core would run 4 threads on 2 cores, and torch's
    # spinning threads slow each other down. Tests that need another count set it.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_r05_root(tmp_path_factory):
    """A directory holding ``deceptive``: a tiny deceptive baseline at sight radius 0.5
    (2 seeds × 60 episodes, replay batches of 64), trained once per test session."""
    root = tmp_path_factory.mktemp("tiny_r05")
    cfg = TrainConfig(
        env=core.EnvConfig(baseline="deceptive", sight_radius=0.5),
        maddpg=MADDPGConfig(batch_size=64, buffer_size=5000),
        run=RunConfig(seeds=(0, 1), episodes=60, log_every=20),
    )
    train(cfg, root / "deceptive", progress=False)
    return root
